"""The baseline for the `ami-ids` benchmark: AMI extraction as the 2015 tooling's Python did it.

    python3 extract_2015.py LOG

Reads the machine-readable log line by line, splits every record, keeps the `REGION:AMI` pairs
of artifact ids and drops builders that errored; prints the pairs as JSON.
"""
import json
import sys

amis = {}
errored = set()
with open(sys.argv[1]) as log:
    for line in log:
        fields = line.rstrip("\n").split(",")
        if len(fields) < 3:
            continue
        target, kind = fields[1], fields[2]
        if kind == "artifact" and len(fields) > 5 and fields[4] == "id":
            pairs = ",".join(fields[5:]).replace("%!(PACKER_COMMA)", ",")
            for pair in pairs.split(","):
                region, ami = pair.split(":")
                amis.setdefault(target, []).append((region, ami))
        elif kind == "error" and target:
            errored.add(target)
for target in errored:
    amis.pop(target, None)
print(json.dumps(amis, indent=4, sort_keys=True))
