package keepalived

// What keepalived 2.2.7 knows, context by context. keepalived reads a
// block keyword by keyword: a keyword it does not know is logged
// ("Unknown keyword") and skipped, and a '{' after it is ignored
// ("Unexpected '{'"), so the first '}' inside such a block closes the
// block around it. Modelling that needs to know every keyword of the
// contexts vipkit reads, and which of them open a block. TestOracleKeywords
// feeds each one to keepalived to prove it knows them.

type kwKind uint8

const (
	kwPlain  kwKind = iota
	kwValue         // a value block: entries until '}' (virtual_ipaddress)
	kwSub           // a block of keywords of its own context (authentication)
	kwOpaque        // a block vipkit does not read (virtual_server)
)

type kwSpec struct {
	kind kwKind
	// sub is the context of a kwSub block.
	sub string
	// arg: keepalived exits ("permanent error CONFIG") when the keyword is
	// given without its parameter.
	arg bool
}

func kws(kind kwKind, arg bool, names ...string) map[string]kwSpec {
	m := make(map[string]kwSpec, len(names))
	for _, n := range names {
		m[n] = kwSpec{kind: kind, arg: arg}
	}
	return m
}

func merge(ms ...map[string]kwSpec) map[string]kwSpec {
	out := map[string]kwSpec{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// keywords by context. The top level's roots open the other contexts.
// keywordSince lists the keywords of the tables that older keepalived
// releases do not know (2.2.7 reads them as "Unknown keyword"); vipctl check
// judges them against the running release.
var keywordSince = map[string]Version{"no_virtual_ipaddress": NoVIPv3}

var keywords = map[string]map[string]kwSpec{
	"top": merge(
		map[string]kwSpec{
			"global_defs":        {kind: kwSub, sub: "global_defs"},
			"vrrp_instance":      {kind: kwSub, sub: "vrrp_instance"},
			"vrrp_sync_group":    {kind: kwSub, sub: "vrrp_sync_group"},
			"vrrp_script":        {kind: kwSub, sub: "vrrp_script", arg: true},
			"track_file":         {kind: kwSub, sub: "track_file", arg: true},
			"vrrp_track_file":    {kind: kwSub, sub: "track_file", arg: true},
			"vrrp_track_process": {kind: kwSub, sub: "vrrp_track_process", arg: true},
		},
		kws(kwValue, false, "static_ipaddress", "static_routes", "static_rules", "linkbeat_interfaces"),
		kws(kwOpaque, false, "garp_group", "bfd_instance", "virtual_server_group", "virtual_server"),
		kws(kwPlain, false, "net_namespace", "net_namespace_ipvs", "namespace_with_ipsets", "instance", "use_pid_dir", "linkbeat_use_polling"),
	),
	"vrrp_instance": merge(
		map[string]kwSpec{"authentication": {kind: kwSub, sub: "authentication"}},
		kws(kwValue, false, "virtual_ipaddress", "virtual_ipaddress_excluded", "virtual_routes", "virtual_rules",
			"track_interface", "track_script", "track_file", "track_process", "track_bfd", "unicast_peer"),
		kws(kwPlain, true, "interface", "state", "virtual_router_id", "priority", "advert_int", "debug",
			"mcast_src_ip", "unicast_src_ip", "version", "preempt_delay", "lvs_sync_daemon_interface",
			"garp_master_delay", "garp_master_repeat", "garp_master_refresh", "garp_master_refresh_repeat",
			"garp_lower_prio_delay", "garp_lower_prio_repeat", "down_timer_adverts", "unicast_ttl",
			"notify", "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify_master_rx_lower_pri"),
		kws(kwPlain, false, "accept", "no_accept", "check_unicast_src", "dont_track_primary", "garp_extra_if",
			"higher_prio_send_advert", "kernel_rx_buf_size", "linkbeat_use_polling", "lower_prio_no_advert",
			"native_ipv6", "no_virtual_ipaddress", "nopreempt", "preempt", "notify_deleted", "notify_priority_changes", "old_unicast_checksum",
			"promote_secondaries", "skip_check_adv_addr", "smtp_alert", "strict_mode", "track_src_ip",
			"unicast_fault_no_peer", "use_ipvlan", "use_vmac", "vmac_xmit_base", "mcast_dst_ip"),
	),
	"authentication": kws(kwPlain, true, "auth_type", "auth_pass"),
	"vrrp_sync_group": merge(
		kws(kwValue, false, "group", "track_interface", "track_script", "track_file", "track_process", "track_bfd"),
		kws(kwPlain, true, "notify", "notify_master", "notify_backup", "notify_fault", "notify_stop"),
		kws(kwPlain, false, "smtp_alert", "global_tracking", "sync_group_tracking_weight", "notify_priority_changes"),
	),
	"vrrp_script": merge(
		kws(kwPlain, true, "interval", "timeout", "weight", "rise", "fall", "user"),
		kws(kwPlain, false, "script", "init_fail"),
	),
	"track_file": kws(kwPlain, false, "file", "weight", "init_file"),
	"vrrp_track_process": merge(
		kws(kwPlain, true, "process", "weight", "quorum", "quorum_max", "delay", "terminate_delay", "fork_delay"),
		kws(kwPlain, false, "param_match", "full_command"),
	),
}

// globalBlocks are global_defs keywords that open a value block; every
// other global_defs keyword is read as a plain line. global_defs has
// about 150 keywords, most of them irrelevant to vipkit: unknown ones there
// are not reported, to avoid false alarms.
var globalBlocks = map[string]bool{"notification_email": true}
