//! Integration tests of caasctl-kube against a real control plane: kube-apiserver,
//! controller-manager, scheduler and hollow nodes started by `caasctl_testing::kube`, shared by
//! every test of this binary. Each test works in its own namespace and storage class.

mod expand;
mod fixtures;
mod restart;
