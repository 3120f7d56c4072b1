#!/bin/sh
# Stand-in for ec2-bundle-vol in `--local` builds: records its arguments and writes a manifest
# where the real tool would. Called as: bundle-vol.sh RECORD BUILDER [ec2-bundle-vol args...]
set -eu
record=$1 builder=$2
shift 2
printf 'bundle-vol builder=%s args=%s\n' "$builder" "$*" >> "$record"
destination='' prefix=''
while [ $# -gt 0 ]; do
    case $1 in
        -d) destination=$2; shift ;;
        -p) prefix=$2; shift ;;
    esac
    shift
done
mkdir -p "$destination"
printf '<manifest builder="%s"/>\n' "$builder" > "$destination/$prefix.manifest.xml"
