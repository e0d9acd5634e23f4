// The X-Lane switch pipeline (P4_16, v1model, BMv2 simple_switch_grpc).
//
// Ingress classifies a packet into a tunnel (include/control/classifier.p4),
// polices and forwards tunnel packets (tunnels.p4) and routes everything
// else best effort (forwarding.p4); standard_metadata.priority carries the
// sub-lane to BMv2's strict-priority egress queues (--priority-queues 8).
// Egress writes the DSCP of the class each copy belongs to (egress.p4).
// The controller's P4Runtime driver (southbound/p4rt) programs it.
#include <core.p4>
#include <v1model.p4>

#include "include/define.p4"
#include "include/header.p4"
#include "include/parser.p4"
#include "include/checksum.p4"
#include "include/control/classifier.p4"
#include "include/control/tunnels.p4"
#include "include/control/forwarding.p4"
#include "include/control/egress.p4"

control XlaneIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t std) {
    Classifier() classifier;
    Tunnels() tunnel;
    Forwarding() forwarding;

    apply {
        classifier.apply(hdr, meta, std);
        if (meta.is_tunnel) {
            tunnel.apply(hdr, meta, std);
        } else {
            forwarding.apply(hdr, meta, std);
        }
    }
}

control XlaneEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t std) {
    Remark() remark;

    apply {
        remark.apply(hdr, meta, std);
    }
}

V1Switch(XlaneParser(), XlaneVerifyChecksum(), XlaneIngress(), XlaneEgress(),
         XlaneComputeChecksum(), XlaneDeparser()) main;
