{
  "targets": [
    {
      "target_name": "vipd_packet",
      "sources": ["packet.cc"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-exceptions"]
    },
    {
      "target_name": "vipd_relay",
      "sources": ["relay.cc"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-exceptions", "-O2", "-std=c++17", "-pthread"],
      "ldflags": ["-pthread"]
    }
  ]
}
