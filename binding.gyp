{
  "targets": [
    {
      "target_name": "memmap",
      "sources": [
        "native/addon.c",
        "native/common.c",
        "native/guard.c",
        "native/mapping.c",
        "native/ranges.c",
        "native/files.c",
        "native/crc32c.c",
        "native/futex.c"
      ],
      "cflags!": ["-Wno-unused-parameter"],
      "cflags_c": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-fvisibility=hidden"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
