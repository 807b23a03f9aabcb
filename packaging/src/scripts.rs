//! The scriptlets: reload systemd, enable the unit on install (not start it: its config needs
//! editing first), restart it on upgrade, stop and disable it on removal. They never touch
//! containers: the agent's unit kills only the agent (KillMode=process), and a restarted agent
//! adopts what runs.

/// RPM %post, %preun and %postun for `unit` ($1 counts the installed instances).
pub fn rpm(unit: &str) -> [String; 3] {
    let post = format!(
        "if [ -d /run/systemd/system ]; then\n\
         \x20   systemctl daemon-reload >/dev/null 2>&1 || :\n\
         fi\n\
         if [ \"$1\" -eq 1 ]; then\n\
         \x20   # First install: enable, start once the config is edited.\n\
         \x20   systemctl enable {unit} >/dev/null 2>&1 || :\n\
         fi\n"
    );
    let preun = format!(
        "if [ \"$1\" -eq 0 ]; then\n\
         \x20   # Removal (not upgrade): stop and disable; containers keep running.\n\
         \x20   systemctl --no-reload disable --now {unit} >/dev/null 2>&1 || :\n\
         fi\n"
    );
    let postun = format!(
        "if [ -d /run/systemd/system ]; then\n\
         \x20   systemctl daemon-reload >/dev/null 2>&1 || :\n\
         fi\n\
         if [ \"$1\" -ge 1 ]; then\n\
         \x20   # Upgrade: restart a running service on the new binary.\n\
         \x20   systemctl try-restart {unit} >/dev/null 2>&1 || :\n\
         fi\n"
    );
    [post, preun, postun]
}

/// deb postinst, prerm and postrm for `unit`, in the shape debhelper generates (enable on
/// first install, try-restart on upgrade, stop on remove, forget on purge).
pub fn deb(unit: &str) -> [String; 3] {
    let postinst = format!(
        "#!/bin/sh\n\
         set -e\n\
         if [ \"$1\" = configure ] || [ \"$1\" = abort-upgrade ] || [ \"$1\" = abort-deconfigure ] || [ \"$1\" = abort-remove ]; then\n\
         \x20   deb-systemd-helper unmask '{unit}' >/dev/null || true\n\
         \x20   # was-enabled is true on first install, so a new install is enabled.\n\
         \x20   if deb-systemd-helper --quiet was-enabled '{unit}'; then\n\
         \x20       deb-systemd-helper enable '{unit}' >/dev/null || true\n\
         \x20   else\n\
         \x20       deb-systemd-helper update-state '{unit}' >/dev/null || true\n\
         \x20   fi\n\
         \x20   if [ -d /run/systemd/system ]; then\n\
         \x20       systemctl --system daemon-reload >/dev/null || true\n\
         \x20       # Upgrade ($2 = the old version): restart a running service on the new binary.\n\
         \x20       if [ -n \"$2\" ]; then\n\
         \x20           deb-systemd-invoke try-restart '{unit}' >/dev/null || true\n\
         \x20       fi\n\
         \x20   fi\n\
         fi\n"
    );
    let prerm = format!(
        "#!/bin/sh\n\
         set -e\n\
         if [ -d /run/systemd/system ] && [ \"$1\" = remove ]; then\n\
         \x20   # Removal (not upgrade): stop the service; containers keep running.\n\
         \x20   deb-systemd-invoke stop '{unit}' >/dev/null || true\n\
         fi\n"
    );
    let postrm = format!(
        "#!/bin/sh\n\
         set -e\n\
         if [ -d /run/systemd/system ]; then\n\
         \x20   systemctl --system daemon-reload >/dev/null || true\n\
         fi\n\
         if [ \"$1\" = remove ]; then\n\
         \x20   if command -v deb-systemd-helper >/dev/null 2>&1; then\n\
         \x20       deb-systemd-helper mask '{unit}' >/dev/null || true\n\
         \x20   fi\n\
         fi\n\
         if [ \"$1\" = purge ]; then\n\
         \x20   if command -v deb-systemd-helper >/dev/null 2>&1; then\n\
         \x20       deb-systemd-helper purge '{unit}' >/dev/null || true\n\
         \x20       deb-systemd-helper unmask '{unit}' >/dev/null || true\n\
         \x20   fi\n\
         fi\n"
    );
    [postinst, prerm, postrm]
}
