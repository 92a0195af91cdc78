//! Descriptor-chain walking (guest TX and RX queues, mergeable buffers, indirect tables)
//! against a guest memory map with a hole, with rings and descriptors laid out by the input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ports::vhost_fuzz::fuzz_descriptor_chains(data);
});
