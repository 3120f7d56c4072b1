#!/bin/sh
# Stand-in for build/provision.sh in `--local` builds: the "instance" is this machine, reached
# over a loopback SSH server, so nothing is installed; it records what it was given instead.
# XTASK_STANDIN_RECORD is set in the environment by the template of a local build.
set -eu
printf 'provision builder=%s version=%s branch=%s ami_tools=%s api_tools=%s\n' \
    "$PACKER_BUILD_NAME" "$COMBOAMI_VERSION" "$COMBOAMI_BRANCH" \
    "$EC2_AMI_TOOLS_VERSION" "$EC2_API_TOOLS_VERSION" >> "$XTASK_STANDIN_RECORD"
echo "stand-in provisioning of $PACKER_BUILD_NAME done"
