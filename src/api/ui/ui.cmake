# The status page (/ui/): its HTML, CSS and JavaScript are compiled into berth_api, so the
# controller binary serves them with nothing to install or load from elsewhere. Included from
# src/CMakeLists.txt after berth_module(api).
file(GLOB berth_ui_files CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_LIST_DIR}/*.html ${CMAKE_CURRENT_LIST_DIR}/*.css ${CMAKE_CURRENT_LIST_DIR}/*.js)
list(SORT berth_ui_files)
set(berth_ui_generated ${CMAKE_CURRENT_BINARY_DIR}/api/ui/embedded_files.cpp)
add_custom_command(
  OUTPUT ${berth_ui_generated}
  COMMAND ${CMAKE_COMMAND} -DOUT=${berth_ui_generated} "-DFILES=${berth_ui_files}"
          -P ${CMAKE_CURRENT_LIST_DIR}/embed.cmake
  DEPENDS ${berth_ui_files} ${CMAKE_CURRENT_LIST_DIR}/embed.cmake
  COMMENT "Embedding the status page (src/api/ui)"
  VERBATIM)
target_sources(berth_api PRIVATE ${CMAKE_CURRENT_LIST_DIR}/ui.cpp ${berth_ui_generated})
