"""TOSCA blueprints: loading, validation, the type library, the Plan model and the compiler."""
