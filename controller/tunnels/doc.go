// Package tunnels is the controller's service layer (paper §2.2, List. 1,
// §3.2): it turns requestBandwidth / releaseBandwidth / changeBandwidth and
// multicast membership into TE operations, programs the switches through
// the southbound interface all-or-nothing, and tells services about
// changes with upcalls that carry a grace period, during which the switch
// state satisfies both the old and the new resources.
//
// The gRPC API, durable state and monitoring build on it.
package tunnels
