# Regression goldens (docs/regression.md), run as a CMake script so it needs nothing beyond
# the build tools. Each golden results/golden/<name>.json records the command that makes
# its run ("run": config and -p overrides); this script runs exactly that command and then
# `iommusim compare`.
#
#   cmake -DMODE=check -DIOMMUSIM=build/iommusim -DSOURCE_DIR=. -DOUT_DIR=build/golden [-DNAMES=a;b] -P scripts/golden.cmake
#       runs and compares each golden (all of them without NAMES); fails on any mismatch.
#   cmake -DMODE=bless ... -P scripts/golden.cmake       (what `make bless` runs)
#       runs every golden's command, plus every example config and the default run that has
#       no golden yet, and blesses each golden from its run, printing what changed.
#   cmake -DMODE=coverage -DSOURCE_DIR=. -P scripts/golden.cmake
#       fails when an example config (or the default run) has no golden.
cmake_minimum_required(VERSION 3.19)  # string(JSON)

# New goldens run this many DMAs per lane: enough for every cache, walk and invalidation
# path to show up, short enough that all goldens check in a few seconds.
set(DEFAULT_TRANSACTIONS 20000)

if(NOT SOURCE_DIR)
  message(FATAL_ERROR "golden.cmake: pass -DSOURCE_DIR=<repository root>")
endif()
set(GOLDEN_DIR ${SOURCE_DIR}/results/golden)

# The names (file names without .json) of the JSON files in dir.
function(json_names out dir)
  file(GLOB files ${dir}/*.json)
  set(names)
  foreach(f ${files})
    get_filename_component(n ${f} NAME_WE)
    list(APPEND names ${n})
  endforeach()
  set(${out} ${names} PARENT_SCOPE)
endfunction()

# Every run a golden should exist for: "default" and each example config.
json_names(examples ${SOURCE_DIR}/configs/examples)
set(EXPECTED default ${examples})

if(MODE STREQUAL "coverage")
  set(missing)
  foreach(n ${EXPECTED})
    if(NOT EXISTS ${GOLDEN_DIR}/${n}.json)
      list(APPEND missing ${n})
    endif()
  endforeach()
  if(missing)
    message(FATAL_ERROR "no golden in results/golden for: ${missing}. `make bless` creates them.")
  endif()
  message(STATUS "every example config and the default run has a golden")
  return()
endif()

if(NOT IOMMUSIM OR NOT OUT_DIR)
  message(FATAL_ERROR "golden.cmake: pass -DIOMMUSIM=<iommusim binary> and -DOUT_DIR=<folder for the runs>")
endif()

if(NOT NAMES)
  json_names(NAMES ${GOLDEN_DIR})
  if(MODE STREQUAL "bless")
    list(APPEND NAMES ${EXPECTED})
    list(REMOVE_DUPLICATES NAMES)
  endif()
endif()

set(failed)
foreach(name ${NAMES})
  set(golden ${GOLDEN_DIR}/${name}.json)
  # The command: the one the golden records, else (a new golden) the example's or the
  # default run's with DEFAULT_TRANSACTIONS.
  set(config "")
  set(params)
  if(EXISTS ${golden})
    file(READ ${golden} text)
    string(JSON config ERROR_VARIABLE err GET "${text}" run config)
    if(err)
      message(SEND_ERROR "${golden}: records no run command (run.config): ${err}")
      list(APPEND failed ${name})
      continue()
    endif()
    string(JSON count ERROR_VARIABLE err LENGTH "${text}" run params)
    if(NOT err AND count GREATER 0)
      math(EXPR last "${count} - 1")
      foreach(i RANGE ${last})
        string(JSON p GET "${text}" run params ${i})
        list(APPEND params ${p})
      endforeach()
    endif()
  elseif(MODE STREQUAL "bless")
    if(NOT name STREQUAL "default")
      set(config configs/examples/${name}.json)
    endif()
    set(params traffic.transactions=${DEFAULT_TRANSACTIONS})
  else()
    message(SEND_ERROR "no golden ${golden}")
    list(APPEND failed ${name})
    continue()
  endif()

  set(run_args run)
  if(config)
    list(APPEND run_args ${SOURCE_DIR}/${config})
  endif()
  set(record_args)
  if(config)
    list(APPEND record_args --config ${config})
  endif()
  foreach(p ${params})
    list(APPEND run_args -p ${p})
    list(APPEND record_args -p ${p})
  endforeach()
  set(out ${OUT_DIR}/${name})
  list(APPEND run_args -o ${out} --force)

  execute_process(COMMAND ${IOMMUSIM} ${run_args} RESULT_VARIABLE rc OUTPUT_VARIABLE run_out ERROR_VARIABLE run_out)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " shown "${run_args}")
    message(SEND_ERROR "${name}: `iommusim ${shown}` exited ${rc}:\n${run_out}")
    list(APPEND failed ${name})
    continue()
  endif()

  if(MODE STREQUAL "bless")
    execute_process(COMMAND ${IOMMUSIM} compare --bless ${out} ${golden} ${record_args}
                    RESULT_VARIABLE rc OUTPUT_VARIABLE cmp_out ERROR_VARIABLE cmp_out)
  else()
    execute_process(COMMAND ${IOMMUSIM} compare ${out} ${golden}
                    RESULT_VARIABLE rc OUTPUT_VARIABLE cmp_out ERROR_VARIABLE cmp_out)
  endif()
  string(STRIP "${cmp_out}" cmp_out)
  message("${cmp_out}")
  if(NOT rc EQUAL 0)
    list(APPEND failed ${name})
  endif()
endforeach()

if(failed)
  message(FATAL_ERROR "golden ${MODE} failed for: ${failed}")
endif()
