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
# The bucket goes in the image's region, as S3 wants it asked: an XML body naming the region,
# none for us-east-1 (S3 refuses `us-east-1` as a LocationConstraint). A bucket already ours
# is fine (409 BucketAlreadyOwnedByYou; us-east-1 answers 200); any other answer stops the
# upload, with S3's status and body.
answer=$(mktemp)
trap 'rm -f "$answer"' EXIT
if [ -z "$region" ] || [ "$region" = us-east-1 ]; then
    status=$(curl -sS -o "$answer" -w '%{http_code}' -X PUT "$endpoint/$bucket")
else
    status=$(curl -sS -o "$answer" -w '%{http_code}' -X PUT "$endpoint/$bucket" \
        -H 'Content-Type: application/xml' --data-binary \
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>$region</LocationConstraint></CreateBucketConfiguration>")
fi
refused() {
    echo "bundle-upload: S3 refused to create bucket $bucket in ${region:-us-east-1}: HTTP $status: $(cat "$answer")" >&2
    exit 1
}
case $status in
    200) ;;
    409) grep -q '<Code>BucketAlreadyOwnedByYou</Code>' "$answer" || refused ;;
    *) refused ;;
esac
curl -sS -f -o /dev/null -T "$manifest" "$endpoint/$bucket/$prefix/$(basename "$manifest")"
echo "stand-in upload of $builder to s3://$bucket/$prefix done"
