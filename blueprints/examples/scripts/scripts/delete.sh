#!/bin/sh
echo "unregistering $TEMPANO_NODE_INSTANCE"
