# Shared by the guest kit's init, /sbin/shutdown and the ACPI handler (busybox ash).
#
# Markers are single lines "VIRIDIAN-GUEST <WORD> [fields...]" written with ONE write(2),
# so lines from concurrent writers never interleave on the serial console.

export PATH=/sbin:/bin:/usr/sbin:/usr/bin

# /dev/console is the last console= of the kernel command line (ttyS0). When it is the
# serial port, markers except TICK are echoed to the VGA text console (tty0) as well,
# where a shell runs for people watching (a TICK every second would bury its prompt).
_viridian_vga=""
if grep -q ttyS /sys/class/tty/console/active 2>/dev/null; then
	_viridian_vga=/dev/tty0
fi

say() {
	_line="VIRIDIAN-GUEST $*
"
	printf '%s' "$_line" >/dev/console 2>/dev/null
	if [ -n "$_viridian_vga" ] && [ "$1" != TICK ]; then
		printf '%s' "$_line" >"$_viridian_vga" 2>/dev/null
	fi
	return 0
}

# Milliseconds since boot, from /proc/uptime ("12.34 5.67"; hundredths of a second).
uptime_ms() {
	read -r _up _idle </proc/uptime
	_s=${_up%.*}
	_f=${_up#*.}
	_f=${_f#0}
	echo $((_s * 1000 + ${_f:-0} * 10))
}
