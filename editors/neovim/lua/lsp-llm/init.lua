-- lsp-llm for Neovim: starts (or connects to) the lsp-llm language server for every file
-- buffer, and gives ghost text (ghost.lua), a streamed chat (chat.lua) and the server's
-- status for the statusline. `require("lsp-llm").setup({...})`; `:help lsp-llm`.
local util = require("lsp-llm.util")

local M = {}

M.defaults = {
  -- The server over stdio: the command that runs `lsp-llm serve`.
  cmd = { "lsp-llm", "serve" },
  -- Or a running `lsp-llm serve --tcp PORT` daemon: { port = 7777, host = "127.0.0.1",
  -- token_file = nil } (the token file defaults to where the daemon writes it).
  tcp = nil,
  -- lsp-llm settings (`initializationOptions`, section `lspLlm`), e.g. { model = "auto" }.
  settings = {},
  -- File types to attach to; nil: every file buffer, whatever its type.
  filetypes = nil,
  root_markers = { ".git" },
  ghost = {
    enabled = true,
    debounce_ms = 100, -- after the last keystroke, before a suggestion is asked for
  },
  -- Insert-mode keys; false leaves one unmapped. A key with nothing shown keeps its meaning.
  keymaps = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-Down>",
    dismiss = "<C-]>",
  },
  chat = {
    split = "vertical", -- or "horizontal"
    size = nil, -- columns (vertical) or lines (horizontal); nil: half the editor
  },
}

M.config = vim.deepcopy(M.defaults)
M.status = { state = "stopped" }

local NAME = "lsp-llm"

--- The running lsp-llm client (for the current buffer when it is attached), or nil.
function M.client(bufnr)
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  local found = get({ name = NAME, bufnr = bufnr })
  if #found == 0 and bufnr ~= nil then
    found = get({ name = NAME })
  end
  return found[1]
end

-- Where `lsp-llm serve --tcp PORT` writes its token (lsp_llm/server/auth.py).
local function token_path(port)
  local runtime = vim.env.XDG_RUNTIME_DIR
  local root = (runtime and runtime ~= "") and runtime or vim.fn.expand("~/.cache")
  return root .. "/lsp-llm/tcp-" .. port .. ".token"
end

local function command_and_options()
  local init = vim.deepcopy(M.config.settings or {})
  local tcp = M.config.tcp
  if tcp then
    local file = tcp.token_file or token_path(tcp.port)
    local ok, lines = pcall(vim.fn.readfile, file)
    if not ok or not lines[1] then
      error("lsp-llm: cannot read the daemon's token file " .. file)
    end
    init.authToken = vim.trim(lines[1])
    return vim.lsp.rpc.connect(tcp.host or "127.0.0.1", tcp.port), init
  end
  return M.config.cmd, init
end

local function set_status(value)
  M.status = value or { state = "stopped" }
  pcall(vim.api.nvim_exec_autocmds, "User", { pattern = "LspLlmStatus", modeline = false })
  vim.cmd("redrawstatus")
end

local function handlers()
  local default_progress = vim.lsp.handlers["$/progress"]
  return {
    ["lspLlm/status"] = function(_, result)
      set_status(result)
    end,
    -- Chat deltas come as partial results on the chat request's token.
    ["$/progress"] = function(err, result, ctx, config)
      if result and require("lsp-llm.chat").on_progress(result) then
        return
      end
      if default_progress then
        return default_progress(err, result, ctx, config)
      end
    end,
  }
end

local function wanted(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) then
    return false
  end
  if vim.bo[bufnr].buftype ~= "" or vim.api.nvim_buf_get_name(bufnr) == "" then
    return false
  end
  local types = M.config.filetypes
  return types == nil or vim.tbl_contains(types, vim.bo[bufnr].filetype)
end

--- Attach lsp-llm to a buffer (starting the server once for all buffers).
function M.attach(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if not wanted(bufnr) then
    return nil
  end
  local cmd, init = command_and_options()
  local root = vim.fs.root and vim.fs.root(bufnr, M.config.root_markers) or nil
  return vim.lsp.start({
    name = NAME,
    cmd = cmd,
    root_dir = root or vim.fn.getcwd(),
    init_options = init,
    settings = { lspLlm = M.config.settings or {} },
    handlers = handlers(),
    -- A suggestion is asked for right after a keystroke: the change must be sent first.
    flags = { debounce_text_changes = 0 },
    on_attach = function(client, buf)
      require("lsp-llm.ghost").attach(client, buf)
    end,
    on_exit = function()
      vim.schedule(function()
        set_status({ state = "stopped" })
      end)
    end,
  }, {
    bufnr = bufnr,
    -- One server for every buffer and root: one model in memory.
    reuse_client = function(client, config)
      return client.name == config.name
    end,
  })
end

--- For the statusline: "lsp-llm: <model> <state>" (empty while stopped).
function M.statusline()
  local s = M.status or {}
  if s.state == nil or s.state == "stopped" then
    return ""
  end
  local model = s.model and (" " .. s.model) or ""
  if s.state == "ready" then
    return "lsp-llm:" .. model
  end
  if s.state == "error" then
    return "lsp-llm: error" .. (s.message and (" (" .. s.message .. ")") or "")
  end
  local message = s.state == "loading" and s.message and (" " .. s.message) or ""
  return "lsp-llm:" .. model .. " " .. s.state .. message
end

--- Change settings on the running server (and for servers started later).
function M.update_settings(changes)
  M.config.settings = vim.tbl_deep_extend("force", M.config.settings or {}, changes)
  local client = M.client()
  if client then
    client.config.settings = { lspLlm = M.config.settings }
    if client.settings then
      client.settings = client.config.settings
    end
    util.call(client, "notify", "workspace/didChangeConfiguration", { settings = { lspLlm = M.config.settings } })
  end
end

M.MODELS = { "auto", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "smollm2", "bundled" }

--- `:LspLlmModel [name]`: serve another model (a catalogue alias, hub id, folder or file).
function M.select_model(name)
  if name and name ~= "" then
    M.update_settings({ model = name })
    return
  end
  vim.ui.select(M.MODELS, { prompt = "lsp-llm model" }, function(choice)
    if choice then
      M.update_settings({ model = choice })
    end
  end)
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  vim.api.nvim_set_hl(0, "LspLlmGhost", { link = "Comment", default = true })
  local group = vim.api.nvim_create_augroup("lsp-llm", { clear = true })
  -- BufEnter as well as FileType: a file Neovim gives no file type still gets the server.
  vim.api.nvim_create_autocmd({ "FileType", "BufEnter" }, {
    group = group,
    callback = function(ev)
      if not (M.client(ev.buf) and vim.lsp.buf_is_attached(ev.buf, M.client(ev.buf).id)) then
        M.attach(ev.buf)
      end
    end,
  })
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) then
      M.attach(buf)
    end
  end
end

return M
