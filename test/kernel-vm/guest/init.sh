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
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk failover net_failover virtio_net bdevfilter veeamblksnap; do
  insmod /lib/modules/vm/$m.ko || echo "VMLOG insmod $m failed"
done
i=0
while [ ! -b /dev/vdd ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 /dev/vdb /work || echo "VMLOG mount of the work disk failed"
echo "VMLOG guest ready after $(cut -d' ' -f1 /proc/uptime) s"
cd /app || exit 1
if grep -q 'vmmode=serve' /proc/cmdline; then
  # the UI screenshot's guest: qemu's user network, the helper reachable on port 7000
  ip link set lo up
  ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
  /usr/bin/node dist/test/kernel-vm/guest/serve.js
else
  /usr/bin/node dist/test/kernel-vm/guest/scenario.js
fi
echo "VMLOG scenario exited with $?"
umount /work
sync
poweroff -f
