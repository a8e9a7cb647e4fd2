#!/bin/busybox sh
# shellcheck shell=dash
# /init of the VM test's guest: mounts the kernel file systems, loads the virtio and
# VAL-7.0 modules, mounts the work disk, runs the scenario in one node process and
# powers off. Lines starting with VMLOG / VMRESULT are read by the host test.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk bdevfilter veeamblksnap; do
  insmod /lib/modules/vm/$m.ko || echo "VMLOG insmod $m failed"
done
i=0
while [ ! -b /dev/vdc ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 /dev/vdb /work || echo "VMLOG mount of the work disk failed"
echo "VMLOG guest ready after $(cut -d' ' -f1 /proc/uptime) s"
cd /app && /usr/bin/node test/kernel-vm/guest/scenario.js
echo "VMLOG scenario exited with $?"
umount /work
sync
poweroff -f
