//! The one integration-test binary: every test here runs the real `gym` executable.
//! Each area has its own module file.

mod cid;
mod common;
mod delta;
mod device;
mod docs;
mod failover;
mod hier;
mod hub_dl_server;
mod hub_download;
mod hub_server;
mod keys;
mod model;
mod orchestrate;
mod plot;
mod publish;
mod reward;
mod ring;
mod train;
mod validate;
mod validator_service;
