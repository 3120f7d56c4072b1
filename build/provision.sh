#!/usr/bin/env bash
# Provisions a ComboAMI image on the build instance. Packer runs it with sudo and with
# COMBOAMI_VERSION, COMBOAMI_BRANCH, EC2_AMI_TOOLS_VERSION and EC2_API_TOOLS_VERSION set, and
# PACKER_BUILD_NAME set to the builder name (`REGION-OSVERSION-pv|hvm`).
#
# Runs only on the instance being imaged: `cargo xtask ... --local` replaces it with
# build/local/provision.sh, so this never runs on your own machine.
set -euo pipefail

: "${COMBOAMI_VERSION:?set by the Packer template}"
: "${COMBOAMI_BRANCH:?set by the Packer template}"
: "${EC2_AMI_TOOLS_VERSION:?set by the Packer template}"
: "${EC2_API_TOOLS_VERSION:?set by the Packer template}"

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get -y -q upgrade
apt-get install -y -q git python-minimal unzip ruby kpartx grub openjdk-7-jre-headless

# The EC2 AMI and API tools, where the bundle commands of the template expect them.
mkdir -p /tmp/ec2
cd /tmp/ec2
curl -fsSLO "https://s3.amazonaws.com/ec2-downloads/ec2-ami-tools-${EC2_AMI_TOOLS_VERSION}.zip"
curl -fsSLO "https://s3.amazonaws.com/ec2-downloads/ec2-api-tools-${EC2_API_TOOLS_VERSION}.zip"
for z in ./*.zip; do unzip -q -o "$z"; done
for d in ec2-ami-tools-*/ ec2-api-tools-*/; do cp -r "$d"* /tmp/ec2/; done

# ComboAMI itself, at the branch the image pulls its updates from.
rm -rf /home/ubuntu/datastax_ami
git clone --branch "$COMBOAMI_BRANCH" https://github.com/riptano/ComboAMI.git /home/ubuntu/datastax_ami
chown -R ubuntu:ubuntu /home/ubuntu/datastax_ami
echo "$COMBOAMI_VERSION" > /home/ubuntu/datastax_ami/presetup/VERSION

# HVM images boot through grub from an MBR-partitioned bundle: the builder name says which.
case "$PACKER_BUILD_NAME" in
  *-hvm)
    sed -i 's/^GRUB_CMDLINE_LINUX_DEFAULT=.*/GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0"/' /etc/default/grub || true
    update-grub
    ;;
esac

# Leave nothing personal in the image.
rm -f /root/.ssh/authorized_keys /home/ubuntu/.ssh/authorized_keys
rm -rf /tmp/*.pem /var/lib/cloud/instances/*
history -c || true
