"""Writes a Packer 1.6.6 machine-readable log of SIZE bytes for the `ami-ids` benchmark.

    python3 make_log.py OUT SIZE BUILDER...

Like a real publish: every builder starts, provisioning output (apt, the installer) makes up the
bulk, interleaved across builders, then each builder finishes and reports its artifact. The last
builder errors instead, as one often does.
"""
import sys

out, size, builders = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
ts = 1795587278

# Provisioning output as Packer relays it: `ui,message` records, commas escaped.
provisioning = [
    "Get:{n} http://archive.ubuntu.com/ubuntu trusty-updates/main libssl1.0.0 amd64 1.0.1f-1ubuntu2.27 [830 kB]",
    "Unpacking libssl1.0.0:amd64 (1.0.1f-1ubuntu2.27) over (1.0.1f-1ubuntu2.22) ...",
    "Setting up libssl1.0.0:amd64 (1.0.1f-1ubuntu2.27) ...",
    "Processing triggers for man-db (2.6.7.1-1ubuntu1) ...",
    "Reading package lists...%!(PACKER_COMMA) done {n}",
    "+ sudo -n bash -c 'echo deb http://debian.datastax.com/community stable main >> /etc/apt/sources.list'",
    "Preparing to unpack .../openjdk-7-jre-headless_7u211-2.6.17-0ubuntu0.1_amd64.deb ...",
    "update-alternatives: using /usr/lib/jvm/java-7-openjdk-amd64/jre/bin/java to provide /usr/bin/java (java) in auto mode",
    "  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current",
    "Cloning into '/home/ubuntu/datastax_ami'...\\nChecking connectivity... done.",
]

with open(out, "w") as log:
    for b in builders:
        log.write(f"{ts},,ui,say,==> {b}: Prevalidating AMI Name: DataStax Auto-Clustering AMI 2.6.4-1404-hvm\n")
        log.write(f"{ts},,ui,say,==> {b}: Launching a source AWS instance...\n")
        log.write(f"{ts},,ui,say,==> {b}: Provisioning with shell script: build/provision.sh\n")
    block = "".join(
        f"{ts},,ui,message,    {b}: {line.format(n=i)}\n"
        for i, line in enumerate(provisioning)
        for b in builders
    )
    written = log.tell()
    while written < size - 100_000:
        log.write(block)
        written += len(block)
    *done, failed = builders
    log.write(f"{ts},,ui,error,Build '{failed}' errored after 21 minutes: Script exited with non-zero exit status: 100\n")
    log.write(f"{ts},{failed},error,Script exited with non-zero exit status: 100\n")
    for i, b in enumerate(done):
        log.write(f"{ts},,ui,say,Build '{b}' finished after 24 minutes 3 seconds.\n")
    log.write(f"{ts},,ui,say,\\n==> Builds finished. The artifacts of successful builds are:\n")
    for i, b in enumerate(done):
        region = b.rsplit("-", 2)[0]
        ami = f"ami-{i:017x}"
        log.write(f"{ts},{b},artifact-count,1\n")
        log.write(f"{ts},{b},artifact,0,builder-id,mitchellh.amazon.instance\n")
        log.write(f"{ts},{b},artifact,0,id,{region}:{ami}\n")
        log.write(f"{ts},{b},artifact,0,string,AMIs were created:\\n{region}: {ami}\\n\n")
        log.write(f"{ts},{b},artifact,0,files-count,0\n")
        log.write(f"{ts},{b},artifact,0,end\n")
