#!/usr/bin/env bash
# Backup throughput against a plain tar of the same recordings, side by side in
# one run: `nvrctl backup create` (encrypt + SHA-256 manifest) vs `tar -cf`,
# both reading through the nvrfs mount and writing to the same directory.
# Usage: bench/backup.sh [MiB]   (default 512)
. "$(dirname "$0")/lib.sh"
MIB=${1:-512}
mkdir -p "$B/out"
mount_set
fill_recordings "$MIB"
printf 'benchmark passphrase\n' > "$B/pass"
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(now); tar -cf "$B/out/plain.tar" -C "$B/mnt" cam1; sync; t1=$(now)
tar_s=$(echo "$t1 - $t0" | bc)
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(now); "$NVRCTL" backup create --config "$B/nvrfs.conf" --to "$B/out" --passphrase-file "$B/pass" >/dev/null 2>&1; sync; t1=$(now)
bak_s=$(echo "$t1 - $t0" | bc)
t0=$(now); "$NVRCTL" backup verify --config "$B/nvrfs.conf" "$B"/out/*.nvrbak --passphrase-file "$B/pass" >/dev/null; t1=$(now)
ver_s=$(echo "$t1 - $t0" | bc)
printf '%-46s %8s %8s %8s\n' "workload ($MIB MiB of recordings)" "tar s" "nvrfs s" "ratio"
printf '%-46s %8.2f %8.2f %8.2f\n' "backup create vs tar -cf (through the mount)" "$tar_s" "$bak_s" "$(echo "$tar_s / $bak_s" | bc -l)"
printf '%-46s %8s %8.2f\n' "backup verify (decrypt + SHA-256, no tar peer)" "-" "$ver_s"
