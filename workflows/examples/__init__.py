"""Example custom workflows, registered under the ``tempano.workflows`` entry-point group."""
