//! I/O: listeners, epoll reactor threads, per-connection buffers and send queues,
//! the event queue and timers. The only module that touches file descriptors.
