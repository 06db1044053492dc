# cloud-init NoCloud seed support of the guest kit (busybox ash; sourced by init).
#
# A seed is an ISO 9660 volume labelled "cidata" (or "CIDATA") holding meta-data,
# user-data (#cloud-config) and network-config (version 2). The reader understands the
# style viridian.library.cloudinit writes (every string a JSON-quoted scalar): the host
# name, users with ssh_authorized_keys, eth0 with dhcp4 or one static address (+ gateway4,
# nameservers), and runcmd (each item run with sh). Markers on COM1:
#   VIRIDIAN-GUEST SEED <device>                 a seed was found
#   VIRIDIAN-GUEST SEED-HOSTNAME <name>
#   VIRIDIAN-GUEST SEED-ADDRESS eth0 <cidr>|dhcp
#   VIRIDIAN-GUEST SEED-USER <name> <number of keys>
#   VIRIDIAN-GUEST SEED-RUNCMD <n> <exit status>
#   VIRIDIAN-GUEST SEED-DONE

SEED_DIR=/run/viridian/seed

# Mounts the first cidata volume on $SEED_DIR; fails when there is none.
find_seed() {
	mkdir -p "$SEED_DIR"
	for _b in /sys/block/sr* /sys/block/vd* /sys/block/sd*; do
		[ -e "$_b" ] || continue
		# ECMA-119 8.4: the volume identifier is at byte 40 of the descriptor at 32768
		_label=$(timeout 10 dd if="/dev/${_b##*/}" bs=1 skip=32808 count=6 2>/dev/null)
		case $_label in
		cidata | CIDATA) ;;
		*) continue ;;
		esac
		if mount -t iso9660 -o ro "/dev/${_b##*/}" "$SEED_DIR" 2>/dev/null; then
			say SEED "${_b##*/}"
			return 0
		fi
	done
	return 1
}

# Prints one record per line, fields separated by TAB: hostname/user/key/runcmd/package
# from user-data, and local-hostname from meta-data.
seed_records() {
	awk '
	function unq(s) {
		sub(/^[ \t]*-?[ \t]*/, "", s)
		if (s ~ /^".*"$/) {
			s = substr(s, 2, length(s) - 2)
			gsub(/\\"/, "\001", s); gsub(/\\\\/, "\\", s); gsub(/\001/, "\"", s)
		}
		return s
	}
	/^[^ #-][^:]*:/ { top = $0; sub(/:.*/, "", top); rest = $0; sub(/^[^:]*:[ \t]*/, "", rest)
		if (top == "hostname" || top == "local-hostname") print top "\t" unq(rest)
		sub_ = ""; next }
	top == "users" && /^  - name:/ { u = $0; sub(/^  - name:[ \t]*/, "", u); user = unq(u)
		print "user\t" user; next }
	top == "users" && /ssh_authorized_keys:/ { sub_ = "keys"; next }
	top == "users" && sub_ == "keys" && /^      - / { print "key\t" user "\t" unq($0); next }
	top == "runcmd" && /^  - / { print "runcmd\t" unq($0); next }
	top == "packages" && /^  - / { print "package\t" unq($0); next }
	' "$SEED_DIR/meta-data" "$SEED_DIR/user-data" 2>/dev/null
}

# Prints "dhcp", or "static<TAB>cidr<TAB>gateway<TAB>dns..." for eth0 of network-config.
seed_network() {
	awk '
	function unq(s) { sub(/^[ \t]*-?[ \t]*/, "", s); gsub(/"/, "", s); return s }
	/^  eth0:/ { eth = 1; next }
	/^  [^ ]/ { eth = 0 }
	!eth { next }
	/dhcp4:[ \t]*true/ { dhcp = 1 }
	/^    addresses:/ { list = "addr"; next }
	/^      addresses:/ { list = "dns"; next }
	/^    [a-z]/ { list = "" }
	/gateway4:/ { g = $0; sub(/.*gateway4:[ \t]*/, "", g); gw = unq(g) }
	list == "addr" && /^      - / { if (addr == "") addr = unq($0) }
	list == "dns" && /^        - / { dns = dns "\t" unq($0) }
	END { if (dhcp || addr == "") print "dhcp"; else print "static\t" addr "\t" gw dns }
	' "$SEED_DIR/network-config" 2>/dev/null
}

apply_seed_hostname() {
	_name=$(seed_records | awk -F'\t' '$1 == "hostname" { h = $2 } $1 == "local-hostname" { m = $2 }
		END { print (h != "" ? h : m) }')
	[ -n "$_name" ] || return 0
	hostname "$_name"
	echo "$_name" >/etc/hostname
	say SEED-HOSTNAME "$_name"
}

apply_seed_network() {
	_net=$(seed_network)
	ip link set eth0 up 2>/dev/null
	case $_net in
	static*)
		_addr=$(echo "$_net" | cut -f2)
		_gw=$(echo "$_net" | cut -f3)
		ip addr add "$_addr" dev eth0
		[ -n "$_gw" ] && ip route add default via "$_gw" dev eth0 2>/dev/null
		echo "$_net" | cut -f4- | tr '\t' '\n' | sed -n 's/^./nameserver &/p' >/etc/resolv.conf
		say SEED-ADDRESS eth0 "$_addr"
		;;
	*)
		udhcpc -i eth0 -n -q -t 5 -T 2 -s /usr/share/udhcpc/default.script >/dev/null 2>&1 &
		say SEED-ADDRESS eth0 dhcp
		;;
	esac
}

apply_seed_users() {
	seed_records | awk -F'\t' '$1 == "user" { print $2 }' | while read -r _u; do
		_home=/home/$_u
		[ "$_u" = root ] && _home=/root
		grep -q "^$_u:" /etc/passwd || echo "$_u:x:1000:1000:$_u:$_home:/bin/sh" >>/etc/passwd
		mkdir -p "$_home/.ssh"
		seed_records | awk -F'\t' -v u="$_u" '$1 == "key" && $2 == u { print $3 }' \
			>"$_home/.ssh/authorized_keys"
		chmod 700 "$_home/.ssh"
		chmod 600 "$_home/.ssh/authorized_keys"
		say SEED-USER "$_u" "$(wc -l <"$_home/.ssh/authorized_keys")"
	done
}

# Run commands, in order, after READY (cloud-init's final stage); output as CFG lines.
run_seed_commands() {
	_n=0
	seed_records | awk -F'\t' '$1 == "runcmd" { print $2 }' >/run/viridian/runcmd.list
	while IFS= read -r _c; do
		_n=$((_n + 1))
		echo "$_c" >"/run/viridian/runcmd-$_n.sh"
		run_config_script "/run/viridian/runcmd-$_n.sh"
		say SEED-RUNCMD "$_n" "$(cat "/run/viridian/runcmd-$_n.sh.rc")"
	done </run/viridian/runcmd.list
	say SEED-DONE
}
