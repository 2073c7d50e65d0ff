//! Integration tests of the snapshot providers: OpenStack and ECS against in-process stand-ins
//! from caasctl-testing, which follow the published APIs but are not the clouds themselves.

mod aliyun;
mod openstack;
