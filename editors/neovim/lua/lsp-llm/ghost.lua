-- Ghost text from `textDocument/inlineCompletion`: asked for after a short pause in typing
-- (the request before is cancelled with `$/cancelRequest`), shown as virtual text (the
-- first line inline at the cursor, the others as virtual lines below), cleared when the
-- cursor leaves it or insert mode ends. Typing the suggestion's next characters keeps the
-- rest on screen until the server's answer for the new text arrives.
local util = require("lsp-llm.util")

local M = {}

local ns = vim.api.nvim_create_namespace("lsp-llm-ghost")
local uv = vim.uv or vim.loop

-- Per buffer: { client, timer, request_id, shown = { row, col, text, replace_col, line }, tick }
local buffers = {}

local function config()
  return require("lsp-llm").config
end

local function state(buf)
  buffers[buf] = buffers[buf] or {}
  return buffers[buf]
end

--- What is on screen in `buf` (nil when nothing): its row, the cursor column it follows,
--- the text still to insert, and the column its edit replaces from.
function M.shown(buf)
  return state(buf or vim.api.nvim_get_current_buf()).shown
end

local function stats(buf)
  local s = state(buf)
  s.stats = s.stats or { sent = 0, cancelled = 0, answered = 0, shown = 0, errors = vim.empty_dict() }
  return s.stats
end

local function cancels(buf)
  local s = state(buf)
  s.cancels = s.cancels or util.cancel_tracker()
  return s.cancels
end

local function cancel(buf)
  local s = state(buf)
  if s.request_id and s.client then
    pcall(util.call, s.client, "cancel_request", s.request_id)
    stats(buf).cancelled = stats(buf).cancelled + 1
    cancels(buf).cancelled(s.request_id)
  end
  s.request_id = nil
end

--- Clear what is shown (and forget it).
function M.clear(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local s = state(buf)
  s.shown = nil
  if vim.api.nvim_buf_is_valid(buf) then
    vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1)
  end
end

local function draw(buf)
  local s = state(buf)
  vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1)
  local shown = s.shown
  if not shown or shown.text == "" then
    return
  end
  local lines = util.lines(shown.text)
  local first = table.remove(lines, 1)
  local opts = { hl_mode = "combine", priority = 200 }
  if shown.replace_col < shown.col then
    -- The suggestion replaces what is before the cursor (a line at another indentation):
    -- its first line is drawn over the line from where the edit starts.
    local line = vim.api.nvim_buf_get_lines(buf, shown.row, shown.row + 1, false)[1] or ""
    local typed = line:sub(shown.replace_col + 1, shown.col)
    local text = typed .. first
    if #text < #line - shown.replace_col then
      text = text .. string.rep(" ", #line - shown.replace_col - #text)
    end
    opts.virt_text = { { text, "LspLlmGhost" } }
    opts.virt_text_pos = "overlay"
    vim.api.nvim_buf_set_extmark(buf, ns, shown.row, shown.replace_col, opts)
  elseif first ~= "" then
    opts.virt_text = { { first, "LspLlmGhost" } }
    opts.virt_text_pos = "inline"
    vim.api.nvim_buf_set_extmark(buf, ns, shown.row, shown.col, opts)
  end
  if #lines > 0 then
    local virt_lines = {}
    for _, l in ipairs(lines) do
      table.insert(virt_lines, { { l, "LspLlmGhost" } })
    end
    vim.api.nvim_buf_set_extmark(buf, ns, shown.row, 0, { virt_lines = virt_lines, priority = 200 })
  end
end

local function item_of(result)
  if type(result) ~= "table" then
    return nil
  end
  local items = result.items or result
  local item = items[1]
  if type(item) ~= "table" then
    return nil
  end
  local text = item.insertText
  if type(text) == "table" then
    text = text.value
  end
  if type(text) ~= "string" or text == "" then
    return nil
  end
  return text, item.range
end

-- Show the server's answer for the cursor at (row, col) when the buffer is as it was asked.
local function on_answer(buf, tick, row, col, encoding, result)
  if not vim.api.nvim_buf_is_valid(buf) or vim.api.nvim_get_mode().mode:sub(1, 1) ~= "i" then
    return
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  if vim.api.nvim_get_current_buf() ~= buf or vim.b[buf].changedtick ~= tick
    or cursor[1] - 1 ~= row or cursor[2] ~= col then
    return -- the user moved on: a newer request is (or will be) on its way
  end
  local text, range = item_of(result)
  if not text then
    M.clear(buf)
    return
  end
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
  local replace_col = col
  if range and range.start and range.start.line == row then
    replace_col = math.min(util.byte_col(line, range.start.character, encoding), col)
  end
  local typed = line:sub(replace_col + 1, col)
  if replace_col < col and text:sub(1, #typed) == typed then
    -- It starts with what is before the cursor: show only the rest, at the cursor.
    text, replace_col = text:sub(#typed + 1), col
  end
  state(buf).shown =
    { row = row, col = col, text = text, replace_col = replace_col, line = line:sub(1, col), tick = tick }
  stats(buf).shown = stats(buf).shown + 1
  draw(buf)
end

local function request(buf)
  local s = state(buf)
  local client = s.client
  if not client or client.is_stopped and client.is_stopped() then
    return
  end
  cancel(buf)
  local win = vim.api.nvim_get_current_win()
  local cursor = vim.api.nvim_win_get_cursor(win)
  local row, col = cursor[1] - 1, cursor[2]
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
  local encoding = client.offset_encoding or "utf-16"
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = row, character = util.lsp_col(line, col, encoding) },
    context = { triggerKind = 2 }, -- automatic: as the user types
  }
  local tick = vim.b[buf].changedtick
  local id
  local ok
  ok, id = util.call(client, "request", "textDocument/inlineCompletion", params, function(err, result)
    cancels(buf).handled(id)
    if s.request_id == id then
      s.request_id = nil
    end
    local counts = stats(buf)
    if err then
      local code = tostring(err.code)
      counts.errors[code] = (counts.errors[code] or 0) + 1
      return -- cancelled, or the server said why (in its log and status)
    end
    counts.answered = counts.answered + 1
    on_answer(buf, tick, row, col, encoding, result)
  end, buf)
  if ok then
    s.request_id = id
    stats(buf).sent = stats(buf).sent + 1
  end
end

local function schedule(buf)
  local s = state(buf)
  if not config().ghost.enabled then
    return
  end
  s.timer = s.timer or uv.new_timer()
  s.timer:stop()
  s.timer:start(config().ghost.debounce_ms, 0, vim.schedule_wrap(function()
    if vim.api.nvim_get_current_buf() == buf and vim.api.nvim_get_mode().mode:sub(1, 1) == "i" then
      request(buf)
    end
  end))
end

-- After a keystroke: what was typed may be the suggestion's next characters (keep the rest
-- on screen), else the suggestion is gone; either way a new one is asked for.
local function on_change(buf)
  local s = state(buf)
  local shown = s.shown
  cancel(buf)
  if shown then
    local cursor = vim.api.nvim_win_get_cursor(0)
    local row, col = cursor[1] - 1, cursor[2]
    local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
    local before = line:sub(1, col)
    local typed = before:sub(#shown.line + 1)
    if row == shown.row and shown.replace_col == shown.col and before:sub(1, #shown.line) == shown.line
      and #typed > 0 and shown.text:sub(1, #typed) == typed and not typed:find("\n") then
      s.shown = {
        row = row,
        col = col,
        text = shown.text:sub(#typed + 1),
        replace_col = col,
        line = before,
        tick = vim.b[buf].changedtick,
      }
      draw(buf)
    else
      M.clear(buf)
    end
  end
  schedule(buf)
end

local function on_move(buf)
  local shown = state(buf).shown
  if not shown or shown.tick ~= vim.b[buf].changedtick then
    return -- nothing shown, or a keystroke TextChangedI handles
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  if cursor[1] - 1 ~= shown.row or cursor[2] ~= shown.col then
    cancel(buf)
    M.clear(buf)
  end
end

--- Insert what is shown: all of it, its next word ("word") or up to its line's end
--- ("line"). Returns false when nothing is shown.
function M.accept(kind)
  local buf = vim.api.nvim_get_current_buf()
  local s = state(buf)
  local shown = s.shown
  if not shown or shown.text == "" then
    return false
  end
  cancel(buf)
  local piece = shown.text
  if shown.replace_col == shown.col and kind == "word" then
    piece = piece:match("^%s*[%w_]+") or piece:match("^%s*[^%w_%s]+") or piece:match("^%s+") or piece
  elseif shown.replace_col == shown.col and kind == "line" then
    piece = piece:match("^[^\n]*\n?")
  end
  local rest = shown.text:sub(#piece + 1)
  local lines = util.lines(piece)
  vim.api.nvim_buf_set_text(buf, shown.row, shown.replace_col, shown.row, shown.col, lines)
  local row = shown.row + #lines - 1
  local col = (#lines == 1 and shown.replace_col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { row + 1, col })
  if rest ~= "" then
    -- Keep the rest on screen; the request the edit triggers gets the server's own.
    local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
    s.shown = { row = row, col = col, text = rest, replace_col = col, line = line:sub(1, col), tick = vim.b[buf].changedtick }
    s.accepted_tick = vim.b[buf].changedtick
    draw(buf)
  else
    M.clear(buf)
  end
  return true
end

local function map(buf, lhs, fn)
  if not lhs or lhs == false then
    return
  end
  vim.keymap.set("i", lhs, function()
    if not fn() then
      -- Nothing shown: the key does what it does without lsp-llm.
      vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(lhs, true, false, true), "n", false)
    end
  end, { buffer = buf, desc = "lsp-llm ghost text" })
end

--- Set up ghost text for a buffer the client attached to.
function M.attach(client, buf)
  local s = state(buf)
  s.client = client
  if s.attached then
    return
  end
  s.attached = true
  local group = vim.api.nvim_create_augroup("lsp-llm-ghost-" .. buf, { clear = true })
  vim.api.nvim_create_autocmd("TextChangedI", {
    group = group,
    buffer = buf,
    callback = function()
      if s.accepted_tick == vim.b[buf].changedtick then
        s.accepted_tick = nil
        schedule(buf) -- our own edit: keep the rest shown, ask for the next
        return
      end
      on_change(buf)
    end,
  })
  -- Whether the server stopped what a keystroke cancelled (util.cancel_tracker).
  vim.api.nvim_create_autocmd("LspRequest", {
    group = group,
    buffer = buf,
    callback = function(ev)
      cancels(buf).on_request(ev)
    end,
  })
  vim.api.nvim_create_autocmd("CursorMovedI", { group = group, buffer = buf, callback = function() on_move(buf) end })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = buf,
    callback = function()
      if s.timer then
        s.timer:stop()
      end
      cancel(buf)
      M.clear(buf)
    end,
  })
  vim.api.nvim_create_autocmd("BufWipeout", {
    group = group,
    buffer = buf,
    callback = function()
      if s.timer then
        s.timer:stop()
        s.timer:close()
      end
      buffers[buf] = nil
    end,
  })
  local keys = require("lsp-llm").config.keymaps
  map(buf, keys.accept, function() return M.accept("all") end)
  map(buf, keys.accept_word, function() return M.accept("word") end)
  map(buf, keys.accept_line, function() return M.accept("line") end)
  map(buf, keys.dismiss, function()
    if not state(buf).shown then
      return false
    end
    cancel(buf)
    M.clear(buf)
    return true
  end)
end

--- Counts for `buf` (the tests read them): requests sent, cancelled by a keystroke or by
--- leaving insert mode, cancels the server acknowledged, cancelled requests that had
--- finished first, answered, suggestions shown, and error responses by code.
function M.stats(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local counts = cancels(buf).counts
  return vim.tbl_extend(
    "force",
    stats(buf),
    { cancel_acknowledged = counts.acknowledged, finished_first = counts.finished_first }
  )
end

return M
