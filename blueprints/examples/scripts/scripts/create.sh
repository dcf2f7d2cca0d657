#!/bin/sh
# Inputs are environment variables; lists and maps arrive as JSON.
set -eu
echo "registering on site $SITE (ports $PORTS) for $TEMPANO_NODE_INSTANCE"
echo "url=http://registry.$SITE.example:5000" >> "$TEMPANO_OUTPUTS"
