#!/bin/sh
# Runs every packaging test (x86_64 release binary); fails if any fails.
here=$(cd "$(dirname "$0")" && pwd)
rc=0
for t in ipk init rpcd; do
	echo "== packaging: $t"
	sh "$here/$t.sh" || rc=1
done
exit $rc
