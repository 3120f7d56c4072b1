#!/bin/sh
# Stand-in for ec2-upload-bundle in `--local` builds: records its arguments (without the keys)
# and uploads the manifest to the stand-in S3 at the bundle location, so cleanup has something
# real to find. Called as: bundle-upload.sh RECORD AWS ENDPOINT BUILDER [ec2-upload-bundle args...]
set -eu
record=$1 aws=$2 endpoint=$3 builder=$4
shift 4
location= manifest= region= shown=
while [ $# -gt 0 ]; do
    case $1 in
        -b) location=$2; shown="$shown -b $2"; shift ;;
        -m) manifest=$2; shown="$shown -m $2"; shift ;;
        --region) region=$2; shown="$shown --region $2"; shift ;;
        -a|-s) shown="$shown $1 <hidden>"; shift ;;
        *) shown="$shown $1" ;;
    esac
    shift
done
printf 'bundle-upload builder=%s args=%s\n' "$builder" "$shown" >> "$record"
bucket=${location%%/*}
prefix=${location#*/}
export AWS_ACCESS_KEY_ID=standin AWS_SECRET_ACCESS_KEY=standin AWS_DEFAULT_REGION="$region"
"$aws" --endpoint-url "$endpoint" s3api create-bucket --bucket "$bucket" >/dev/null 2>&1 || true
"$aws" --endpoint-url "$endpoint" s3 cp --quiet "$manifest" "s3://$bucket/$prefix/$(basename "$manifest")"
echo "stand-in upload of $builder to s3://$bucket/$prefix done"
