// The one source of the targets that own berth's precompiled headers (cmake/BerthPch.cmake):
// building it writes the .gch that every other target reuses.
