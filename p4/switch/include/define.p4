// Constants shared by the X-Lane switch pipeline's controls.
#ifndef XLANE_DEFINE_P4
#define XLANE_DEFINE_P4

typedef bit<9>  port_t;
typedef bit<32> tunnel_id_t;
typedef bit<16> meter_idx_t;
typedef bit<16> mcast_group_t;

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<8>  PROTO_UDP      = 17;

// X-Lane packets carry their header after UDP to this port (the endhost
// lane's port, endhost/lane); other UDP packets are not parsed further.
const bit<16> XLANE_UDP_PORT = 0x5858;
const bit<4>  XLANE_VERSION  = 1;

// Capacity: metered tunnels per switch (the driver allocates meter slots
// densely, as the Open vSwitch driver allocates meter ids).
const bit<32> MAX_METERED = 4096;

// BMv2 with --priority-queues 8 serves the highest priority first: sub-lane
// s gets priority 7 - s, best effort 0.
const bit<3> PRIORITY_TOP = 7;

// meter colours (v1model execute_meter)
const bit<2> METER_GREEN = 0;
const bit<2> METER_RED   = 2;

#endif
