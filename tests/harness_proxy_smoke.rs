//! The harness's Portcullis launcher against the real binary: it starts on run-time ports,
//! becomes ready, and real clients pull through it (mode = skip: no trust source involved).

mod support;

use support::real::images::{self, V1_NOTE};
use support::real::*;

#[test]
fn clients_pull_through_real_portcullis_in_skip_mode() {
    let reg = Registry::start(RegistryAuth::None);
    let img = images::push(
        &reg,
        "demo/app",
        "v1",
        &ImageSpec::single(V1_NOTE),
        Format::Oci,
    );
    let proxy = Portcullis::start(&format!(
        "[[registries]]\nname = \"{}\"\nupstream = \"{}\"\ndefault = true\nmode = \"skip\"\n",
        reg.addr(),
        reg.url()
    ));
    let r = format!("{}/demo/app:v1", reg.addr());
    let s = skopeo_pull(&proxy.addr(), &r, None);
    s.assert_ok("skopeo through portcullis");
    assert_eq!(s.digest.as_deref(), Some(img.digest.as_str()));
    let c = Containerd::start();
    let p = c.pull(&proxy.addr(), &r, None);
    p.assert_ok("ctr through portcullis");
    assert_eq!(p.digest.as_deref(), Some(img.digest.as_str()));
    let pm = Podman::new().pull(&proxy.addr(), &r, None);
    pm.assert_ok("podman through portcullis");
    assert!(
        reg.log().contains("GET /v2/demo/app/manifests/v1"),
        "the proxy fetched from the registry"
    );
}
