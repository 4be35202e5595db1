-- The chat split: `:LspLlmChat [question]` asks `lspLlm/chat` with the selection (or the
-- whole buffer) as context and streams the answer into a Markdown buffer as its deltas
-- arrive (`$/progress` on the request's partial result token); `:LspLlmStop` cancels it.
-- Questions and answers stay in the conversation until `:LspLlmChatClear`.
local util = require("lsp-llm.util")

local M = {}

local chat = {
  buf = nil, -- the chat buffer
  messages = {}, -- the conversation, as lspLlm/chat takes it
  token = nil, -- the partial result token of the answer being streamed
  request = nil, -- { client, id }
  answer = "",
  deltas = 0, -- streamed pieces received over the session (the tests read it)
  stops = util.cancel_tracker(), -- whether the server stopped what :LspLlmStop cancelled
}
local counter = 0

local function window_of(buf)
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_buf(win) == buf then
      return win
    end
  end
  return nil
end

local function chat_buffer()
  if chat.buf and vim.api.nvim_buf_is_valid(chat.buf) then
    return chat.buf
  end
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_name(buf, "lsp-llm://chat")
  vim.bo[buf].filetype = "markdown"
  vim.bo[buf].bufhidden = "hide"
  -- Neovim's own markdown parser: the old syntax file marks `_` inside words as errors.
  pcall(vim.treesitter.start, buf, "markdown")
  chat.buf = buf
  return buf
end

local function show(buf)
  local win = window_of(buf)
  if win then
    return win
  end
  local cfg = require("lsp-llm").config.chat
  local here = vim.api.nvim_get_current_win()
  local size = cfg.size and tostring(cfg.size) or ""
  vim.cmd("botright " .. size .. (cfg.split == "horizontal" and "split" or "vsplit"))
  win = vim.api.nvim_get_current_win()
  vim.api.nvim_win_set_buf(win, buf)
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.api.nvim_set_current_win(here)
  return win
end

local function append(text)
  local buf = chat.buf
  if not buf or not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  local pieces = util.lines(text)
  local last = vim.api.nvim_buf_line_count(buf) - 1
  local tail = vim.api.nvim_buf_get_lines(buf, last, last + 1, false)[1] or ""
  pieces[1] = tail .. pieces[1]
  vim.api.nvim_buf_set_lines(buf, last, last + 1, false, pieces)
  local win = window_of(buf)
  if win then
    vim.api.nvim_win_set_cursor(win, { vim.api.nvim_buf_line_count(buf), 0 })
  end
end

--- Take a `$/progress` message if it carries the streamed chat's delta.
function M.on_progress(result)
  if chat.token == nil or result.token ~= chat.token then
    return false
  end
  local value = result.value
  if type(value) == "table" and type(value.delta) == "string" then
    chat.deltas = chat.deltas + 1
    chat.answer = chat.answer .. value.delta
    append(value.delta)
  end
  return true
end

local function finish(note)
  if chat.answer ~= "" then
    table.insert(chat.messages, { role = "assistant", content = chat.answer })
  end
  append((note and ("\n\n" .. note) or "") .. "\n\n")
  chat.token, chat.request, chat.answer = nil, nil, ""
  pcall(vim.api.nvim_exec_autocmds, "User", { pattern = "LspLlmChatDone", modeline = false })
end

--- Ask `question` about `source` (a buffer), its lines `first`..`last` (1-based) when
--- given; the answer streams into the chat split.
function M.ask(question, source, first, last)
  local lsp_llm = require("lsp-llm")
  source = source or vim.api.nvim_get_current_buf()
  if source == chat.buf then
    source = chat.source or source
  end
  local client = lsp_llm.client(source)
  if not client then
    vim.notify("lsp-llm: the server is not running for this buffer", vim.log.levels.WARN)
    return
  end
  if chat.request then
    M.stop()
  end
  local buf = chat_buffer()
  show(buf)
  chat.source = source
  local context = nil
  if vim.api.nvim_buf_get_name(source) ~= "" and source ~= buf then
    context = { uri = vim.uri_from_bufnr(source) }
    if first and last then
      local last_line = vim.api.nvim_buf_get_lines(source, last - 1, last, false)[1] or ""
      local encoding = client.offset_encoding or "utf-16"
      context.range = {
        start = { line = first - 1, character = 0 },
        ["end"] = { line = last - 1, character = util.lsp_col(last_line, #last_line, encoding) },
      }
    end
  end
  table.insert(chat.messages, { role = "user", content = question })
  append("## You\n\n" .. question .. "\n\n## lsp-llm\n\n")
  counter = counter + 1
  chat.token = "lsp-llm-chat-" .. counter
  chat.answer = ""
  local params = { messages = chat.messages, partialResultToken = chat.token }
  if context then
    params.context = context
  end
  local token = chat.token
  local id
  local ok
  ok, id = util.call(client, "request", "lspLlm/chat", params, function(err, result)
    chat.stops.handled(id)
    if chat.token ~= token then
      return -- stopped: already finished
    end
    if err then
      finish(err.code == -32800 and "[stopped]" or ("[error: " .. tostring(err.message) .. "]"))
      return
    end
    if result and type(result.content) == "string" and #result.content > #chat.answer
      and result.content:sub(1, #chat.answer) == chat.answer then
      local rest = result.content:sub(#chat.answer + 1)
      chat.answer = result.content
      append(rest)
    end
    finish()
  end, source)
  if ok then
    chat.request = { client = client, id = id }
  else
    finish("[the request could not be sent]")
  end
end

--- Stop the answer being streamed (`$/cancelRequest`).
function M.stop()
  local request = chat.request
  if not request then
    return false
  end
  pcall(util.call, request.client, "cancel_request", request.id)
  chat.stops.cancelled(request.id)
  finish("[stopped]")
  return true
end

vim.api.nvim_create_autocmd("LspRequest", {
  group = vim.api.nvim_create_augroup("lsp-llm-chat", { clear = true }),
  callback = function(ev)
    chat.stops.on_request(ev)
  end,
})

--- Stops that the server acknowledged, and stops that came after the answer was done.
function M.stops()
  return chat.stops.counts
end

--- Forget the conversation and empty the chat buffer.
function M.clear()
  M.stop()
  chat.messages = {}
  if chat.buf and vim.api.nvim_buf_is_valid(chat.buf) then
    vim.api.nvim_buf_set_lines(chat.buf, 0, -1, false, {})
  end
end

--- The chat buffer (tests read it), or nil.
function M.buffer()
  return chat.buf
end

--- How many streamed pieces have arrived (over the session).
function M.deltas()
  return chat.deltas
end

--- Whether an answer is being streamed.
function M.busy()
  return chat.request ~= nil
end

return M
