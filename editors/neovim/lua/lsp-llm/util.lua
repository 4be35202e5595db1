-- Helpers shared by the plugin's modules: calling a client's methods the way this Neovim
-- wants (0.11 made them methods), and LSP positions to byte columns.
local M = {}

local has_011 = vim.fn.has("nvim-0.11") == 1

--- Call a client's method (`request`, `notify`, `cancel_request`) on any Neovim >= 0.10.
function M.call(client, name, ...)
  if has_011 then
    return client[name](client, ...)
  end
  return client[name](...)
end

--- The byte column in `line` of an LSP character offset in `encoding`.
function M.byte_col(line, character, encoding)
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local ok, col = pcall(vim.str_byteindex, line, encoding, character, false) -- 0.11
  if ok and type(col) == "number" then
    return col
  end
  ok, col = pcall(vim.str_byteindex, line, character, encoding == "utf-16") -- 0.10
  if ok and type(col) == "number" then
    return col
  end
  return #line
end

--- The LSP character offset of byte column `col` in `line`, in `encoding`.
function M.lsp_col(line, col, encoding)
  if encoding == "utf-8" then
    return col
  end
  local ok, units = pcall(vim.str_utfindex, line, encoding, col, false) -- 0.11
  if ok and type(units) == "number" then
    return units
  end
  local ok10, utf32, utf16 = pcall(vim.str_utfindex, line, col) -- 0.10
  if ok10 then
    return encoding == "utf-16" and utf16 or utf32
  end
  return col
end

--- Which of the requests we cancelled the server stopped. Neovim drops the server's
--- RequestCancelled answer without calling the request's handler, while a result that came
--- before the cancel reaches it; its "complete" LspRequest event comes before the handler
--- runs, so the verdict waits a moment. `counts`: acknowledged, finished_first. Only
--- cancelled requests are remembered, until their end.
function M.cancel_tracker()
  local tracker = { counts = { acknowledged = 0, finished_first = 0 } }
  local cancelled, handled = {}, {}
  function tracker.cancelled(id)
    cancelled[id] = true
  end
  function tracker.handled(id)
    if cancelled[id] then
      handled[id] = true
    end
  end
  function tracker.on_request(ev)
    local data = ev.data or {}
    local id = data.request_id
    if not (data.request and data.request.type == "complete" and cancelled[id]) then
      return
    end
    vim.defer_fn(function()
      local key = handled[id] and "finished_first" or "acknowledged"
      tracker.counts[key] = tracker.counts[key] + 1
      cancelled[id], handled[id] = nil, nil
    end, 100)
  end
  return tracker
end

--- Split text into lines (a trailing newline gives a last empty line).
function M.lines(text)
  return vim.split(text, "\n", { plain = true })
end

return M
