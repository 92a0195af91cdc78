//! Port kinds and packet buffers (issue 3: tap, AF_XDP/AF_PACKET, internal; issue 5:
//! vhost-user). Nothing here yet.
