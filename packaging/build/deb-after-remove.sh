#!/bin/sh
# deb postrm (electron-builder deb.afterRemove): undoes deb-after-install.sh. The helper's
# state (/var/lib/blksnap-manager: registered images, settings) is kept.
set -e
rm -f /usr/bin/blksnap-manager /usr/bin/blksnap-manager-cli
rm -f /usr/share/polkit-1/actions/org.blksnapmanager.helper.policy
rm -f /usr/lib/systemd/system/blksnap-manager-helper.service
if command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
if command -v update-desktop-database >/dev/null 2>&1; then update-desktop-database /usr/share/applications || true; fi
