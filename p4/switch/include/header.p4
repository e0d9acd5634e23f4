// Headers and metadata of the X-Lane switch pipeline.
#ifndef XLANE_HEADER_P4
#define XLANE_HEADER_P4

#include "define.p4"

header ethernet_t {
    bit<48> dst_addr;
    bit<48> src_addr;
    bit<16> ether_type;
}

header ipv4_t {
    bit<4>  version;
    bit<4>  ihl;
    bit<6>  dscp;
    bit<2>  ecn;
    bit<16> total_len;
    bit<16> identification;
    bit<3>  flags;
    bit<13> frag_offset;
    bit<8>  ttl;
    bit<8>  protocol;
    bit<16> hdr_checksum;
    bit<32> src_addr;
    bit<32> dst_addr;
}

header udp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<16> len;
    bit<16> checksum;
}

// The X-Lane header (20 bytes), as the endhost lane frames it: the chunks
// follow, each with its own CRC (Appendix B schemata).
header xlane_t {
    bit<4>  version;
    bit<4>  flags;
    bit<8>  schema;       // chunk schema: 1 = HD6 (CRC-24), 2 = HD8 (CRC-32)
    bit<16> chunk_count;
    bit<32> tunnel_id;
    bit<32> sequence;
    bit<64> sender_ts_ns; // the sender's timestamp, nanoseconds
}

struct headers_t {
    ethernet_t ethernet;
    ipv4_t     ipv4;
    udp_t      udp;
    xlane_t    xlane;
}

struct metadata_t {
    bool        is_tunnel;
    tunnel_id_t tunnel_id;
    bool        metered;
    meter_idx_t meter_idx;
    bit<6>      out_dscp;
    bit<2>      color;
}

#endif
