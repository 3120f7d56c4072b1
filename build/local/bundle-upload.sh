#!/bin/sh
# Stand-in for ec2-upload-bundle in `--local` builds: records its arguments (without the keys)
# and uploads the manifest to the stand-in S3 at the bundle location, so cleanup has something
# real to find. Called as: bundle-upload.sh RECORD ENDPOINT BUILDER [ec2-upload-bundle args...]
# (curl rather than the aws CLI: 32 parallel CLI start-ups would dominate a local publish).
set -eu
record=$1 endpoint=$2 builder=$3
shift 3
location='' manifest='' region='' shown=''
while [ $# -gt 0 ]; do
    case $1 in
        -b) location=$2; shown="$shown -b $2"; shift ;;
        -m) manifest=$2; shown="$shown -m $2"; shift ;;
        --region) region=$2; shown="$shown --region $2"; shift ;;
        -a|-s|-t) shown="$shown $1 <hidden>"; shift ;;
        *) shown="$shown $1" ;;
    esac
    shift
done
printf 'bundle-upload builder=%s args=%s\n' "$builder" "$shown" >> "$record"
bucket=${location%%/*}
prefix=${location#*/}
# Creating a bucket that exists fails harmlessly; the upload below must not.
curl -sS -o /dev/null -X PUT "$endpoint/$bucket" \
    -d "<CreateBucketConfiguration><LocationConstraint>$region</LocationConstraint></CreateBucketConfiguration>" || true
curl -sS -f -o /dev/null -T "$manifest" "$endpoint/$bucket/$prefix/$(basename "$manifest")"
echo "stand-in upload of $builder to s3://$bucket/$prefix done"
