// Egress: the DSCP each copy leaves with — the tunnel's sub-lane mark, or
// best effort for everything else (a host cannot buy express priority by
// marking its own packets).
#ifndef XLANE_EGRESS_P4
#define XLANE_EGRESS_P4

#include "../header.p4"

control Remark(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t std) {
    apply {
        if (hdr.ipv4.isValid()) {
            if (meta.is_tunnel) {
                hdr.ipv4.dscp = meta.out_dscp;
            } else {
                hdr.ipv4.dscp = 0;
            }
        }
    }
}

#endif
