//! vhost-user protocol messages from a hostile frontend, each with a real shared-memory fd,
//! then the queues they started are polled.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ports::vhost_fuzz::fuzz_vhost_messages(data);
});
