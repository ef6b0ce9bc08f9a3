// Client documents a Relay app would write against Chronicle. `npm run check` compiles them
// with the Relay compiler against ../schema.graphql (see README "Relay"); they are never run.
import { graphql } from "react-relay";

// An item card that refetches itself by id: needs the Node interface and `node(id:)`.
export const itemCard = graphql`
  fragment documents_itemCard on Item @refetchable(queryName: "ItemCardRefetchQuery") {
    id
    title
    status
    tags
    version
    author {
      id
      displayName
    }
  }
`;

// A workspace's items, paginated forward with a Relay connection.
export const workspaceItems = graphql`
  fragment documents_workspaceItems on Workspace
  @refetchable(queryName: "WorkspaceItemsPaginationQuery")
  @argumentDefinitions(first: { type: "Int", defaultValue: 20 }, after: { type: "String" }) {
    id
    name
    members(first: $first, after: $after) @connection(key: "documents_members") {
      edges {
        node {
          id
          role
          user {
            id
            displayName
          }
        }
      }
    }
  }
`;

export const itemsPage = graphql`
  query documentsItemsQuery($workspaceId: ID!, $first: Int, $after: String) {
    items(workspaceId: $workspaceId, first: $first, after: $after)
      @connection(key: "documents_items") {
      edges {
        node {
          id
          ...documents_itemCard
        }
      }
    }
  }
`;

// The same list read backward (the newest page first, then earlier ones).
export const itemsBackward = graphql`
  query documentsItemsBackwardQuery($workspaceId: ID!, $last: Int, $before: String) {
    items(workspaceId: $workspaceId, last: $last, before: $before)
      @connection(key: "documentsBackward__items") {
      edges {
        node {
          id
          title
        }
      }
    }
  }
`;

// Anything by id.
export const nodeQuery = graphql`
  query documentsNodeQuery($id: ID!) {
    node(id: $id) {
      __typename
      id
      ... on Workspace {
        name
      }
      ...documents_workspaceItems @alias
      ...documents_itemCard @alias
    }
  }
`;

// A mutation whose payload returns the changed item with its id, so the store updates in place.
export const updateItem = graphql`
  mutation documentsUpdateItemMutation($input: UpdateItemInput!) {
    updateItem(input: $input) {
      item {
        id
        ...documents_itemCard
      }
      position
    }
  }
`;

// A workspace's members read backward (the last page first, then earlier ones), with their
// count: `usePaginationFragment`'s `loadPrevious`.
export const membersBackward = graphql`
  fragment documents_membersBackward on Workspace
  @refetchable(queryName: "WorkspaceMembersBackwardPaginationQuery")
  @argumentDefinitions(last: { type: "Int", defaultValue: 20 }, before: { type: "String" }) {
    id
    members(last: $last, before: $before) @connection(key: "documentsBackward_members") {
      totalCount
      edges {
        node {
          id
          role
          joinedAt
        }
      }
    }
  }
`;

// The caller's workspaces (by name), read backward from the end.
export const workspacesBackward = graphql`
  query documentsWorkspacesBackwardQuery($last: Int, $before: String) {
    workspaces(last: $last, before: $before) @connection(key: "documentsBackward_workspaces") {
      totalCount
      edges {
        node {
          id
          name
          ...documents_membersBackward
        }
      }
    }
  }
`;

// A failed job or an export, refetched by id.
export const jobOrExportNode = graphql`
  query documentsJobOrExportNodeQuery($id: ID!) {
    node(id: $id) {
      __typename
      id
      ... on FailedJob {
        kind
        dead
        attempts
        maxAttempts
        lastError
      }
      ... on Export {
        state
        downloadUrl
      }
    }
  }
`;

// Retrying a failed job by the id `node` and `failedJobs` give; the store updates the job.
export const retryJob = graphql`
  mutation documentsRetryJobMutation($id: ID!) {
    retryJob(id: $id) {
      job {
        id
        dead
        attempts
      }
      position
    }
  }
`;
