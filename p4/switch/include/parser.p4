// Parser and deparser: Ethernet, IPv4, UDP, and the X-Lane header on the
// lane's UDP port.
#ifndef XLANE_PARSER_P4
#define XLANE_PARSER_P4

#include "header.p4"

parser XlaneParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                   inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_IPV4: parse_ipv4;
            default: accept;
        }
    }
    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
        transition select(hdr.ipv4.ihl, hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (5, 0, PROTO_UDP): parse_udp;  // options or fragments: not classified
            default: accept;
        }
    }
    state parse_udp {
        pkt.extract(hdr.udp);
        transition select(hdr.udp.dst_port) {
            XLANE_UDP_PORT: parse_xlane;
            default: accept;
        }
    }
    state parse_xlane {
        pkt.extract(hdr.xlane);
        transition accept;
    }
}

control XlaneDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.ipv4);
        pkt.emit(hdr.udp);
        pkt.emit(hdr.xlane);
    }
}

#endif
