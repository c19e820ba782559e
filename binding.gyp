{
  "targets": [
    {
      "target_name": "memmap",
      "sources": [
        "native/addon.c",
        "native/common.c",
        "native/guard.c",
        "native/mapping.c",
        "native/futex.c",
        "native/extras.c"
      ],
      "cflags_c": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
