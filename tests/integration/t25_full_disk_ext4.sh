#!/usr/bin/env bash
# The same full-set scenarios as t24 on 200 MiB ext4 file systems on loop
# devices: real block allocation, journal and reserved blocks.
# test-slow: 40
. "$(dirname "$0")/lib.sh"
setup_loop 200M
. "$(dirname "$0")/full_disk.inc"
finish
