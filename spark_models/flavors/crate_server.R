# The R side of spark-models' crate flavor (base R only). Run by spark_models/flavors/r_process.py:
#
#   Rscript --vanilla crate_server.R serve <crate.bin> <response fd>
#     Reads the crate once, answers READY (or FAIL), then loops: read a frame on stdin, call the
#     crate on it as a data.frame, write the result to the response fd, until STOP or end of input.
#   Rscript --vanilla crate_server.R pack <input .rds> <output crate.bin>
#     Writes a crate (an RDS file of the function, or MLflow's crate.bin) as MLflow R does:
#     saveRDS(serialize(crate, NULL)).
#
# Messages: 4 ASCII bytes of kind, 12 ASCII digits of payload length, the payload. A frame is
# UTF-8 text: one line of column types, then CSV with a header row. Character values carry one
# leading "s" so that an unquoted NA is the only missing value (and come escaped, \\ \r \n, for
# allowEscapes, as read.csv would turn a raw CR LF into LF); doubles travel as C99 hex
# ("%a"), which both sides read back exactly.

read_crate <- function(path) {
  crate <- readRDS(path)
  if (is.raw(crate)) crate <- unserialize(crate)  # MLflow R's crate.bin: an RDS of serialize(crate)
  if (!is.function(crate)) {
    stop(sprintf("%s holds a %s, not an R function (a crate)", path, class(crate)[1]), call. = FALSE)
  }
  crate
}

pack <- function(input, output) {
  crate <- read_crate(input)
  if (!inherits(crate, "crate")) {
    stop(sprintf(paste("%s holds a function without the \"crate\" class, which MLflow R cannot load:",
                       "make it with carrier::crate(), or set class(f) <- c(\"crate\", class(f))"), input),
         call. = FALSE)
  }
  saveRDS(serialize(crate, NULL), output)
}

read_exactly <- function(con, n) {
  chunks <- list()
  got <- 0
  while (got < n) {
    chunk <- readBin(con, "raw", min(n - got, 1048576))
    if (length(chunk) == 0) return(NULL)
    chunks[[length(chunks) + 1]] <- chunk
    got <- got + length(chunk)
  }
  if (n == 0) raw(0) else do.call(c, chunks)
}

receive <- function(con) {
  header <- read_exactly(con, 16)
  if (is.null(header) || length(header) < 16) return(NULL)
  size <- as.numeric(rawToChar(header[5:16]))
  payload <- read_exactly(con, size)
  if (is.null(payload)) return(NULL)
  list(kind = rawToChar(header[1:4]), payload = payload)
}

send <- function(con, kind, payload = raw(0)) {
  if (is.character(payload)) payload <- charToRaw(enc2utf8(payload))
  writeBin(charToRaw(sprintf("%s%012.0f", kind, length(payload))), con)
  writeBin(payload, con)
  flush(con)
}

from_text <- function(x, type) {
  switch(type,
    numeric = as.numeric(x),
    integer = as.integer(x),
    logical = as.logical(x),
    character = strip_marks(x),
    datetime = as.POSIXct(x, tz = "UTC", format = "%Y-%m-%dT%H:%M:%OS"),
    date = as.Date(x, format = "%Y-%m-%d"),
    stop(sprintf("unknown column type %s", type), call. = FALSE))
}

strip_marks <- function(x) {
  present <- !is.na(x)
  x[present] <- substring(x[present], 2)
  x
}

decode_frame <- function(payload) {
  newline <- match(as.raw(10L), payload)
  types <- strsplit(rawToChar(payload[seq_len(newline - 1)]), ",", fixed = TRUE)[[1]]
  body <- rawToChar(payload[-seq_len(newline)])
  Encoding(body) <- "UTF-8"
  frame <- utils::read.csv(text = body, colClasses = "character", na.strings = "NA", check.names = FALSE,
                           encoding = "UTF-8", strip.white = FALSE, allowEscapes = TRUE)
  if (length(types) != ncol(frame)) stop("column types and CSV columns disagree", call. = FALSE)
  for (i in seq_along(types)) frame[[i]] <- from_text(frame[[i]], types[[i]])
  frame
}

column_type <- function(x) {
  if (is.factor(x)) return("character")
  if (inherits(x, "POSIXt")) return("datetime")
  if (inherits(x, "Date")) return("date")
  if (is.logical(x)) return("logical")
  if (is.integer(x)) return("integer")
  if (is.double(x)) return("numeric")
  if (is.atomic(x)) return("character")
  stop(sprintf("the crate returned a column holding a %s; return atomic vectors", class(x)[1]), call. = FALSE)
}

to_text <- function(x, type) {
  text <- switch(type,
    numeric = sprintf("%a", as.double(x)),
    datetime = format(x, "%Y-%m-%dT%H:%M:%OS6", tz = "UTC"),
    date = format(x, "%Y-%m-%d"),
    character = paste0("s", enc2utf8(as.character(x))),
    as.character(x))
  text[is.na(x)] <- NA_character_
  text
}

encode_result <- function(result) {
  kind <- if (is.data.frame(result) || is.matrix(result)) "FRAM" else "VECT"
  if (is.matrix(result)) result <- as.data.frame(result, stringsAsFactors = FALSE)
  if (kind == "VECT") {
    if (is.null(result) || !is.atomic(result) || !is.null(dim(result))) {
      stop(sprintf("the crate returned a %s; return a vector or a data.frame with one row per input row",
                   class(result)[1]), call. = FALSE)
    }
    result <- list(value = result)
  }
  if (length(result) == 0) stop("the crate returned a data.frame without columns", call. = FALSE)
  labels <- if (kind == "VECT") "value" else enc2utf8(names(result))
  if (kind == "FRAM" && .row_names_info(result) > 0) {
    # Row names of its own (e.g. the crate reordered its input): sent first, for Python to realign.
    kind <- "FRMR"
    result <- c(list(row.names(result)), as.list(result))
    labels <- c("", labels)
  }
  types <- vapply(result, column_type, "")
  text <- as.data.frame(Map(to_text, result, types), stringsAsFactors = FALSE, optional = TRUE)
  names(text) <- labels
  con <- rawConnection(raw(0), "w")
  on.exit(close(con))
  writeLines(paste(types, collapse = ","), con)
  utils::write.csv(text, con, row.names = FALSE, na = "NA")
  list(kind = kind, payload = rawConnectionValue(con))
}

describe_error <- function(e) {
  call <- conditionCall(e)
  where <- if (is.null(call)) "" else paste0(" in ", paste(deparse(call, nlines = 1), collapse = ""))
  paste0("Error", where, ": ", conditionMessage(e))
}

score <- function(crate, payload, params) {
  env <- new.env(parent = globalenv())
  env$crate <- crate
  env$data <- decode_frame(payload)
  # crate(data, name = value, ...): what an R error shows as its call
  call <- as.call(c(list(as.name("crate"), as.name("data")), params))
  result <- withCallingHandlers(eval(call, env), warning = function(w) {
    message("R warning: ", conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  encode_result(result)
}

serve <- function(crate_path, response_fd) {
  input <- file("stdin", "rb")
  output <- file(sprintf("/dev/fd/%s", response_fd), "wb", raw = TRUE)
  crate <- tryCatch(read_crate(crate_path), error = function(e) {
    send(output, "FAIL", describe_error(e))
    quit(save = "no", status = 3)
  })
  send(output, "REDY", paste0(R.version$major, ".", R.version$minor))
  params <- list()
  repeat {
    msg <- receive(input)
    if (is.null(msg) || msg$kind == "STOP") break
    if (msg$kind == "PARM") {
      params <- as.list(decode_frame(msg$payload))
      next
    }
    reply <- tryCatch(score(crate, msg$payload, params), error = function(e) {
      list(kind = "FAIL", payload = describe_error(e))
    })
    params <- list()
    send(output, reply$kind, reply$payload)
  }
  invisible(NULL)
}

args <- commandArgs(trailingOnly = TRUE)
if (length(args) == 3 && args[[1]] == "serve") {
  serve(args[[2]], args[[3]])
} else if (length(args) == 3 && args[[1]] == "pack") {
  tryCatch(pack(args[[2]], args[[3]]), error = function(e) {
    message(conditionMessage(e))
    quit(save = "no", status = 2)
  })
} else {
  message("usage: crate_server.R serve <crate.bin> <fd> | pack <input.rds> <crate.bin>")
  quit(save = "no", status = 64)
}
