// Tunnels: police a tunnel at its first switch (an indirect meter per
// metered tunnel; red packets are dropped and counted), then forward it
// to a port or, at a multicast branch, to a replication group. A direct
// counter per tunnel entry feeds the controller's monitoring.
#ifndef XLANE_TUNNELS_P4
#define XLANE_TUNNELS_P4

#include "../header.p4"

control Tunnels(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t std) {
    meter(MAX_METERED, MeterType.bytes) tunnel_meter;
    counter(MAX_METERED, CounterType.packets_and_bytes) meter_drops;
    direct_counter(CounterType.packets_and_bytes) tunnel_counter;

    action output(port_t port) {
        std.egress_spec = port;
        tunnel_counter.count();
    }
    action multicast(mcast_group_t group) {
        std.mcast_grp = group;
        tunnel_counter.count();
    }
    action drop() {
        mark_to_drop(std);
        tunnel_counter.count();
    }

    table tunnels {
        key = {
            meta.tunnel_id : exact @name("tunnel_id");
        }
        actions = {
            output;
            multicast;
            drop;
        }
        const default_action = drop();
        counters = tunnel_counter;
        size = 16384;
    }

    apply {
        if (meta.metered) {
            tunnel_meter.execute_meter((bit<32>)meta.meter_idx, meta.color);
            if (meta.color == METER_RED) {
                meter_drops.count((bit<32>)meta.meter_idx);
                mark_to_drop(std);
                return;
            }
        }
        tunnels.apply();
    }
}

#endif
