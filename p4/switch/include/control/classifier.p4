// Classifier: which tunnel a packet belongs to at this switch — by ingress
// port, sender, receiver (host or group), UDP port and the DSCP it arrives
// with (the sender marks its sub-lane; further on the previous switch
// did). Unmarked or unknown packets stay best effort.
#ifndef XLANE_CLASSIFIER_P4
#define XLANE_CLASSIFIER_P4

#include "../header.p4"

control Classifier(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t std) {
    // A tunnel's packets at a switch after its first: priority and DSCP of
    // its sub-lane (best effort and 0 once demoted).
    action express(tunnel_id_t tunnel_id, bit<3> priority, bit<6> dscp) {
        meta.is_tunnel = true;
        meta.tunnel_id = tunnel_id;
        meta.out_dscp = dscp;
        std.priority = priority;
    }
    // The same at the tunnel's first switch, where its meter polices it.
    action express_metered(tunnel_id_t tunnel_id, bit<3> priority, bit<6> dscp, meter_idx_t meter_idx) {
        express(tunnel_id, priority, dscp);
        meta.metered = true;
        meta.meter_idx = meter_idx;
    }

    table classifier {
        key = {
            std.ingress_port  : exact @name("ingress_port");
            hdr.ipv4.src_addr : exact @name("src_addr");
            hdr.ipv4.dst_addr : exact @name("dst_addr");
            hdr.udp.dst_port  : exact @name("dst_port");
            hdr.ipv4.dscp     : exact @name("dscp");
        }
        actions = {
            express;
            express_metered;
            @defaultonly NoAction;
        }
        const default_action = NoAction();
        size = 16384;
    }

    apply {
        if (hdr.udp.isValid()) {
            classifier.apply();
        }
    }
}

#endif
