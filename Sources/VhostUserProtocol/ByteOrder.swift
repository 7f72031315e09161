// The vhost-user protocol puts every integer on the wire in the *host's native* byte order
// (vhost-user.rst, "Message Specification"). The hosts this daemon supports (x86-64, and
// AArch64 in its usual configuration) are little-endian, so native order is little-endian
// and every load and store in this module is written out explicitly as little-endian,
// byte by byte, instead of relying on in-memory struct layout.
//
// A big-endian host would need native-order loads instead; refuse to build there rather
// than silently speaking the wrong byte order.
#if _endian(big)
#error("VhostUserProtocol assumes a little-endian host: vhost-user messages are in host byte order.")
#endif
