#!/bin/sh
# Stand-in for build/provision.sh in `--local` builds: the "instance" is this machine, reached
# over a loopback SSH server, so nothing is installed; it records what it was given instead.
# XTASK_STANDIN_RECORD is set in the environment by the template of a local build, and
# XTASK_STANDIN_FAIL (from `XTASK_LOCAL_FAIL`) names builders that fail here on purpose, to
# rehearse a failure and its resume.
set -eu
case ",${XTASK_STANDIN_FAIL:-}," in
*",$PACKER_BUILD_NAME,"*)
    echo "rehearsed failure of $PACKER_BUILD_NAME (XTASK_LOCAL_FAIL)" >&2
    exit 3
    ;;
esac
printf 'provision builder=%s version=%s branch=%s ami_tools=%s api_tools=%s\n' \
    "$PACKER_BUILD_NAME" "$COMBOAMI_VERSION" "$COMBOAMI_BRANCH" \
    "$EC2_AMI_TOOLS_VERSION" "$EC2_API_TOOLS_VERSION" >> "$XTASK_STANDIN_RECORD"
echo "stand-in provisioning of $PACKER_BUILD_NAME done"
