package tunnels

import "errors"

// Error kinds; the API maps them to gRPC status codes.
var (
	ErrInvalid     = errors.New("invalid argument")   // InvalidArgument
	ErrExhausted   = errors.New("resource exhausted") // ResourceExhausted
	ErrNotFound    = errors.New("not found")          // NotFound
	ErrPermission  = errors.New("permission denied")  // PermissionDenied
	ErrUnavailable = errors.New("unavailable")        // Unavailable
)
