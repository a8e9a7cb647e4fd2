#!/bin/sh
# deb postinst (electron-builder deb.afterInstall). Replaces electron-builder's default
# script, so it does what that one does (the /usr/bin link, the chrome-sandbox mode,
# desktop databases) and installs the helper's polkit action and systemd unit from the
# app's resources (electron-builder extraResources) into the system directories.
set -e
APP_DIR='/opt/Blksnap Manager'
RES="$APP_DIR/resources"

ln -sf "$APP_DIR/blksnap-manager" /usr/bin/blksnap-manager
if [ -f "$APP_DIR/chrome-sandbox" ]; then
  chown root:root "$APP_DIR/chrome-sandbox" || true
  chmod 4755 "$APP_DIR/chrome-sandbox" || true
fi

# pkexec runs only a root-owned launcher that users cannot change
chown root:root "$RES/bin/blksnap-manager-helper"
chmod 0755 "$RES/bin/blksnap-manager-helper"
# the command-line client (the app's own binary is /usr/bin/blksnap-manager)
if [ -f "$RES/bin/blksnap-manager-cli" ]; then
  chmod 0755 "$RES/bin/blksnap-manager-cli"
  ln -sf "$RES/bin/blksnap-manager-cli" /usr/bin/blksnap-manager-cli
fi
install -D -m 0644 "$RES/polkit/org.blksnapmanager.helper.policy" /usr/share/polkit-1/actions/org.blksnapmanager.helper.policy
install -D -m 0644 "$RES/systemd/blksnap-manager-helper.service" /usr/lib/systemd/system/blksnap-manager-helper.service
if command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload >/dev/null 2>&1 || true; fi

if command -v update-mime-database >/dev/null 2>&1; then update-mime-database /usr/share/mime || true; fi
if command -v update-desktop-database >/dev/null 2>&1; then update-desktop-database /usr/share/applications || true; fi
