#!/usr/bin/env bash
# A full set on 200 MB tmpfs members (issue 11): clean ENOSPC, whole files,
# an intact audit log, no failed member, and recycling that keeps recording.
# test-slow: 40
. "$(dirname "$0")/lib.sh"
setup 200M
. "$(dirname "$0")/full_disk.inc"
finish
