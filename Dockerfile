# Portcullis container image. Build it with deploy/build-image.sh, which makes the local base
# image (debootstrap + docker import: no image registry is reachable) and puts the binary,
# compiled on the host, at target/docker/portcullis.
#
# Why the binary is compiled outside: a builder stage would need a Rust toolchain recent enough
# for edition 2024 (Debian bookworm ships rustc 1.63) and crates.io during the build, and
# neither is inside a build that has no network. The host that builds the image is Debian
# bookworm too, so the binary links against the same glibc the runtime stage copies.
#
# Stage 1 assembles a minimal root filesystem from the Debian base: the binary, exactly the
# shared libraries `ldd` says it needs, the CA bundle, a static busybox for HEALTHCHECK, and an
# unprivileged user. Stage 2 is that tree on `scratch`: no shell package, no apt, no root.
ARG BASE_IMAGE=portcullis-base/debian:bookworm

FROM ${BASE_IMAGE} AS rootfs
COPY target/docker/portcullis /out/usr/local/bin/portcullis
COPY deploy/docker/portcullis.toml /out/etc/portcullis/portcullis.toml
RUN set -eu; \
    bin=/out/usr/local/bin/portcullis; \
    chmod 0755 "$bin"; \
    for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do \
        cp -L --parents "$lib" /out/; \
    done; \
    mkdir -p /out/etc/ssl/certs /out/bin /out/tmp /out/var/lib/portcullis; \
    cp -L /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/; \
    cp /bin/busybox /out/bin/busybox; \
    ln -s busybox /out/bin/sh; \
    echo 'root:x:0:0:root:/root:/sbin/nologin' > /out/etc/passwd; \
    echo 'portcullis:x:65532:65532:portcullis:/var/lib/portcullis:/sbin/nologin' >> /out/etc/passwd; \
    printf 'root:x:0:\nportcullis:x:65532:\n' > /out/etc/group; \
    echo 'hosts: files dns' > /out/etc/nsswitch.conf; \
    chown 65532:65532 /out/var/lib/portcullis; \
    chmod 0700 /out/var/lib/portcullis; \
    chmod 1777 /out/tmp; \
    chmod 0644 /out/etc/portcullis/portcullis.toml; \
    # fail the build, not the container, when a library is missing: the loader resolves every
    # dependency inside the new tree without running the program
    chroot /out /lib64/ld-linux-x86-64.so.2 --list /usr/local/bin/portcullis; \
    chroot /out /bin/busybox true

FROM scratch
COPY --from=rootfs /out/ /
USER 65532:65532
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# registry API, admin (/healthz /readyz /metrics)
EXPOSE 5050 9090
VOLUME ["/var/lib/portcullis"]
# The admin port is 9090 in deploy/docker/portcullis.toml; change both together. (No wget -T:
# Debian's static busybox 1.35 segfaults with it; --timeout bounds the check instead.)
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve", "--config", "/etc/portcullis/portcullis.toml"]
