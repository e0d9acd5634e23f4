// Best-effort forwarding: static routes to every host (longest prefix),
// priority 0. Nothing else is forwarded.
#ifndef XLANE_FORWARDING_P4
#define XLANE_FORWARDING_P4

#include "../header.p4"

control Forwarding(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t std) {
    action route(port_t port) {
        std.egress_spec = port;
        std.priority = 0;
    }
    action drop() {
        mark_to_drop(std);
    }

    table routes {
        key = {
            hdr.ipv4.dst_addr : lpm @name("dst_addr");
        }
        actions = {
            route;
            drop;
        }
        const default_action = drop();
        size = 4096;
    }

    apply {
        if (hdr.ipv4.isValid()) {
            routes.apply();
        } else {
            mark_to_drop(std);
        }
    }
}

#endif
