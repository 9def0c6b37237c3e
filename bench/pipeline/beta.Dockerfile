# Benchmark image "beta": busybox for the arch, then real work in a RUN step
# (a shell loop of 120,000 additions in one process: CPU-bound, seconds under qemu).
#
# One stage per arch that only COPYs (see examples/busybox/Dockerfile: an ARG after
# FROM scratch would commit an image of the daemon's platform).
ARG ARCH=amd64
FROM scratch AS amd64
COPY rootfs/amd64/busybox /bin/busybox
FROM scratch AS arm64v8
COPY rootfs/arm64v8/busybox /bin/busybox
FROM scratch AS arm32v7
COPY rootfs/arm32v7/busybox /bin/busybox

FROM ${ARCH}
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && i=0 && while [ $i -lt 120000 ]; do i=$((i+1)); done && echo beta $i > /etc/bench"]
CMD ["sh"]
